//! How an MPI gang across pods reaches its workers the way Kubeflow's MPIJob does: OpenMPI's
//! launcher (`mpirun`, under `wasm-run train --hostfile`) starts its daemons on the worker pods
//! over ssh. The operator makes one key pair per job for the launcher and one host key for the
//! workers' sshd (kept in the job's Secret), so the launcher checks whom it talks to instead of
//! MPIJob's `StrictHostKeyChecking no`; the workers' sshd runs as the pod's own non-root user
//! on an unprivileged port, key login only.
//!
//! The same texts serve the operator (Secret, spec ConfigMap) and the tests that start this
//! sshd and mpirun between network namespaces, so what is tested is what pods get.

use std::collections::BTreeMap;
use std::path::Path;

/// The workers' sshd port: unprivileged, as sshd runs as the pod's user.
pub const PORT: u16 = 2222;
/// The launcher's private key, in the keys directory.
pub const CLIENT_KEY: &str = "id_ed25519";
/// The workers' sshd host key.
pub const HOST_KEY: &str = "host_ed25519";
/// The launcher's public key, the one key the workers let in.
pub const AUTHORIZED_KEYS: &str = "authorized_keys";
/// The workers' host key for every host: the launcher refuses any other.
pub const KNOWN_HOSTS: &str = "known_hosts";
/// The sshd config file name (in the spec directory).
pub const SSHD_CONFIG: &str = "sshd_config";
/// The ssh client config file name (in the spec directory).
pub const SSH_CONFIG: &str = "ssh_config";
/// OpenMPI's hostfile name (in the spec directory).
pub const HOSTFILE: &str = "hostfile";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("making the job's ssh keys: {0}")]
    Key(#[from] ssh_key::Error),
}

/// A job's keys, as files of its keys directory (a Secret's data).
#[derive(Clone, Debug)]
pub struct Keys {
    files: BTreeMap<String, String>,
}

impl Keys {
    /// Fresh Ed25519 keys from the OS's randomness.
    pub fn generate() -> Result<Keys, Error> {
        use ssh_key::rand_core::OsRng;
        use ssh_key::{Algorithm, LineEnding, PrivateKey};
        let client = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)?;
        let host = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)?;
        let client_public = client.public_key().to_openssh()?;
        let host_public = host.public_key().to_openssh()?;
        let files = BTreeMap::from([
            (
                CLIENT_KEY.to_string(),
                client.to_openssh(LineEnding::LF)?.to_string(),
            ),
            (
                HOST_KEY.to_string(),
                host.to_openssh(LineEnding::LF)?.to_string(),
            ),
            (AUTHORIZED_KEYS.to_string(), format!("{client_public}\n")),
            (KNOWN_HOSTS.to_string(), format!("* {host_public}\n")),
        ]);
        Ok(Keys { files })
    }

    /// File name to contents.
    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// Writes the files into `dir`, readable by their owner alone (as ssh wants of keys it
    /// owns).
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir)?;
        for (name, text) in &self.files {
            let path = dir.join(name);
            std::fs::write(&path, text)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }
}

/// The workers' sshd config: the job's host key, the launcher's key alone, nothing but
/// commands (no passwords, forwarding, TTYs or user environment). `StrictModes no`: the keys
/// are a Secret volume, root-owned and group-readable, which sshd's owner checks refuse.
pub fn sshd_config(keys_dir: &str, port: u16) -> String {
    format!(
        "# Weft MPI worker: sshd as the pod's user, for the job's launcher alone.
Port {port}
HostKey {keys_dir}/{HOST_KEY}
AuthorizedKeysFile {keys_dir}/{AUTHORIZED_KEYS}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
PrintMotd no
PermitTTY no
PermitUserEnvironment no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
"
    )
}

/// The launcher's ssh config (OpenMPI's `plm_rsh_args` gives it with `-F`): the job's key,
/// the workers' host key checked, never a prompt; a connection refused or timed out is tried
/// again (a worker's sshd restarting).
pub fn ssh_config(keys_dir: &str, port: u16) -> String {
    format!(
        "# Weft MPI launcher: reaches the job's workers only.
Host *
  Port {port}
  IdentityFile {keys_dir}/{CLIENT_KEY}
  IdentitiesOnly yes
  UserKnownHostsFile {keys_dir}/{KNOWN_HOSTS}
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  CheckHostIP no
  BatchMode yes
  PasswordAuthentication no
  ConnectionAttempts 10
  ConnectTimeout 10
  LogLevel ERROR
"
    )
}

/// `OMPI_MCA_plm_rsh_args` for a launcher whose ssh config is at `config`.
pub fn rsh_args(config: &str) -> String {
    format!("-F {config}")
}

/// The DNS name of a job's worker `index`: an Indexed Job's pod hostname (`<job>-<index>`) in
/// the headless Service's subdomain.
pub fn worker_host(workers_job: &str, service: &str, index: u32) -> String {
    format!("{workers_job}-{index}.{service}")
}

/// OpenMPI's hostfile: each host with `slots` ranks.
pub fn hostfile<I: IntoIterator<Item = String>>(hosts: I, slots: u32) -> String {
    hosts
        .into_iter()
        .map(|h| format!("{h} slots={slots}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_openssh_ed25519_and_the_launcher_trusts_only_the_host_key() {
        let keys = Keys::generate().unwrap();
        let f = keys.files();
        let client = ssh_key::PrivateKey::from_openssh(&f[CLIENT_KEY]).unwrap();
        let host = ssh_key::PrivateKey::from_openssh(&f[HOST_KEY]).unwrap();
        assert_eq!(client.algorithm(), ssh_key::Algorithm::Ed25519);
        assert_ne!(client.public_key(), host.public_key());
        let authorized = ssh_key::PublicKey::from_openssh(f[AUTHORIZED_KEYS].trim()).unwrap();
        assert_eq!(&authorized, client.public_key());
        let known = f[KNOWN_HOSTS].trim().strip_prefix("* ").unwrap();
        assert_eq!(
            &ssh_key::PublicKey::from_openssh(known).unwrap(),
            host.public_key()
        );
        // Fresh each time.
        let again = Keys::generate().unwrap();
        assert_ne!(again.files()[CLIENT_KEY], f[CLIENT_KEY]);
    }

    #[test]
    fn the_hostfile_names_each_worker_with_its_slots() {
        let hosts = (0..2).map(|i| worker_host("iris-node", "iris-workers", i));
        assert_eq!(
            hostfile(hosts, 4),
            "iris-node-0.iris-workers slots=4\niris-node-1.iris-workers slots=4\n"
        );
    }
}
