//! A TrainJob's MPI gang across hosts, the way the operator runs it in pods: two worker
//! "pods" (each a network, hostname and mount namespace of its own, its own Weft home at the
//! launcher's path) run sshd with the config and keys the operator gives them, and a launcher
//! in a third namespace runs `wasm-run train --hostfile` with the operator's hostfile (the
//! workers' DNS names) and ssh config. As in the pods, sshd and the launcher run as an
//! unprivileged user, and the keys are root's files that user's group may read (a Secret
//! volume with fsGroup). The ranks share only the S3 store (moto on the bridge between
//! them), whose settings reach them through mpirun, not through ssh.
//!
//! Needs root (namespaces, a bridge), iproute2, util-linux's unshare and setpriv,
//! openssh-server, OpenMPI, moto and the user `weft-mpi`; `cargo xtask test` installs and adds
//! them, and with `CI` set a missing one fails.

use crate::support::*;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_mpi_ssh as ssh;

const WORKERS_JOB: &str = "iris-node";
const SERVICE: &str = "iris-workers";

/// Runs `cmd`, failing the test with its words if it fails.
fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip(args: &[&str]) {
    sh(Command::new("ip").args(args));
}

/// The unprivileged user sshd and the launcher run as (the pods' uid 65532).
const USER: &str = "weft-mpi";

/// `USER`'s uid and gid.
fn user() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, USER]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// `setpriv`'s arguments that run what follows as `USER`.
fn as_user((uid, gid): (u32, u32)) -> Vec<String> {
    vec![
        "setpriv".into(),
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
        "--init-groups".into(),
    ]
}

/// Keys as a Secret volume has them for `gid`: root's files, readable by the group alone.
fn keys_as_secret(dir: &Path, gid: u32) {
    use std::os::unix::fs::{chown, PermissionsExt};
    chown(dir, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        chown(&path, Some(0), Some(gid)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
    }
}

/// A directory `USER` owns (a pod's emptyDir).
fn owned_dir(path: &Path, (uid, gid): (u32, u32)) {
    std::fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// Whether this machine can make the hosts (outside CI a test without them does not run).
fn hosts_possible() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let found = |p: &str| Path::new(p).exists();
    let missing = [
        (root, "root (network namespaces and a bridge)"),
        (found("/usr/sbin/sshd"), "/usr/sbin/sshd (openssh-server)"),
        (found("/usr/bin/unshare"), "unshare (util-linux)"),
        (found("/usr/bin/setpriv"), "setpriv (util-linux)"),
        (user().is_some(), "user weft-mpi (cargo xtask test adds it)"),
        (found("/usr/bin/mpirun"), "mpirun (openmpi-bin)"),
        (
            Command::new("ip").arg("-V").output().is_ok(),
            "ip (iproute2)",
        ),
    ];
    for (ok, what) in missing {
        if !ok {
            tool_missing(&format!("no {what}: the MPI gang across hosts not tested"));
            return false;
        }
    }
    true
}

/// The hosts: a bridge, and a namespace per host with an address on it; removed when dropped
/// with everything started in them.
struct Hosts {
    bridge: String,
    namespaces: Vec<String>,
    subnet: String,
    children: Vec<Child>,
}

impl Hosts {
    fn new(count: usize) -> Hosts {
        let tag = std::process::id() % 100_000;
        let bridge = format!("wb{tag}");
        let subnet = format!("10.213.{}", tag % 250);
        let mut hosts = Hosts {
            bridge: bridge.clone(),
            namespaces: Vec::new(),
            subnet: subnet.clone(),
            children: Vec::new(),
        };
        // What a killed run of this test with the same pid left behind.
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
        };
        quiet(&["link", "del", &bridge]);
        for i in 0..count {
            quiet(&["netns", "del", &format!("weft{tag}-{i}")]);
        }
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{subnet}.254/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..count {
            let ns = format!("weft{tag}-{i}");
            ip(&["netns", "add", &ns]);
            hosts.namespaces.push(ns.clone());
            let veth = format!("wv{tag}-{i}");
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&["link", "set", &veth, "master", &bridge, "up"]);
            let addr = format!("{subnet}.{}/24", i + 1);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        hosts
    }

    fn addr(&self, host: usize) -> String {
        format!("{}.{}", self.subnet, host + 1)
    }

    /// `ip netns exec` into host `i`'s namespace.
    fn exec(&self, i: usize) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.namespaces[i]]);
        cmd
    }

    /// Host `i` resolves `names` (each to its host) as a pod resolves the workers' DNS names.
    fn resolve(&self, i: usize, names: &[(String, usize)]) {
        let dir = PathBuf::from("/etc/netns").join(&self.namespaces[i]);
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = "127.0.0.1 localhost\n".to_string();
        for (name, host) in names {
            text += &format!("{} {name}\n", self.addr(*host));
        }
        std::fs::write(dir.join("hosts"), text).unwrap();
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

fn wait_port(addr: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < until, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// moto's S3 on the bridge (reached from every host), with bucket `weft-test`; its settings.
fn s3_on(hosts: &mut Hosts) -> Vec<(String, String)> {
    let moto = std::env::var("WEFT_TEST_MOTO_SERVER").expect(
        "needs WEFT_TEST_MOTO_SERVER (the moto_server binary; cargo xtask test installs it)",
    );
    let bridge_ip = format!("{}.254", hosts.subnet);
    let port = TcpListener::bind((bridge_ip.parse::<Ipv4Addr>().unwrap(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(moto)
        .args(["-H", &bridge_ip, "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    hosts.children.push(child);
    let endpoint = format!("{bridge_ip}:{port}");
    wait_port(&endpoint);
    use std::io::{Read, Write};
    let mut conn = TcpStream::connect(&endpoint).unwrap();
    write!(conn, "PUT /weft-test HTTP/1.1\r\nHost: {endpoint}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    [
        ("AWS_ENDPOINT", format!("http://{endpoint}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec()
}

/// Worker `i` as its pod: its hostname, its own (empty) Weft home at the launcher's path,
/// sshd with the operator's config in the foreground as `USER`, logging to `log`.
fn start_worker(hosts: &mut Hosts, i: usize, s: &Scratch, config: &Path, log: &Path) {
    let user = user().unwrap();
    let own_home = s.path(&format!("{WORKERS_JOB}-{i}-home"));
    owned_dir(&own_home, user);
    let child = hosts
        .exec(i)
        .args(["unshare", "--uts", "--mount", "--", "sh", "-c"])
        .arg(r#"hostname "$0" && mount --bind "$1" "$2" && shift 2 && exec "$@""#)
        .arg(format!("{WORKERS_JOB}-{i}"))
        .args([&own_home, &s.path("home")])
        .args(as_user(user))
        .args(["/usr/sbin/sshd", "-D", "-e", "-f"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    hosts.children.push(child);
    let addr = format!("{}:{}", hosts.addr(i), ssh::PORT);
    let until = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&addr).is_err() {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            Instant::now() < until,
            "worker {i}'s sshd is not listening: {said}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `wasm-run train FILE --hostfile HOSTFILE --json` on host `i`, the launcher, with the ssh
/// config `ssh_config` and the store's settings.
fn launch(
    hosts: &Hosts,
    i: usize,
    s: &Scratch,
    store: &[(String, String)],
    ssh_config: &Path,
    file: &Path,
    hostfile: &Path,
) -> std::process::Output {
    hosts
        .exec(i)
        .args([
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            r#"hostname launcher && exec "$@""#,
        ])
        .arg("sh")
        .args(as_user(user().unwrap()))
        .arg(env!("CARGO_BIN_EXE_wasm-run"))
        .args(["--artifact-store", "s3://weft-test/artifacts", "train"])
        .arg(file)
        .arg("--hostfile")
        .arg(hostfile)
        .arg("--json")
        .env("WEFT_HOME", s.path("home"))
        .env("RUST_LOG", "off")
        .env(
            "OMPI_MCA_plm_rsh_args",
            ssh::rsh_args(ssh_config.to_str().unwrap()),
        )
        .envs(store.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

/// Engine mpi with 2 nodes of 2 processes, `epochs` epochs, `backoff` restarts.
fn two_node_job(s: &Scratch, name: &str, epochs: u32, backoff: u32) -> PathBuf {
    let params = format!(", epochs: {epochs}, optimizer: sgd");
    let spec = format!("  runPolicy: {{backoffLimit: {backoff}}}\n");
    let file = crate::train::job(s, name, &params, &spec);
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "numProcPerNode: 4",
        "numNodes: 2\n    numProcPerNode: 2\n    engine: mpi",
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn a_two_node_gang_trains_across_hosts_that_share_only_the_store() {
    if !hosts_possible() {
        return;
    }
    let s = Scratch::new();
    let user = user().unwrap();
    // The user reaches the scratch files (as a pod reads its mounts), and owns the homes.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    owned_dir(&s.path("home"), user);
    let mut hosts = Hosts::new(3);
    let store = s3_on(&mut hosts);
    // What the operator puts in the job's Secret and spec ConfigMap, at their own paths here.
    let keys = s.path("keys");
    ssh::Keys::generate().unwrap().write_to(&keys).unwrap();
    keys_as_secret(&keys, user.1);
    let keys_dir = keys.to_str().unwrap();
    let sshd_config = s.path(ssh::SSHD_CONFIG);
    std::fs::write(&sshd_config, ssh::sshd_config(keys_dir, ssh::PORT)).unwrap();
    let ssh_config = s.path(ssh::SSH_CONFIG);
    std::fs::write(&ssh_config, ssh::ssh_config(keys_dir, ssh::PORT)).unwrap();
    let names: Vec<String> = (0..2)
        .map(|i| ssh::worker_host(WORKERS_JOB, SERVICE, i))
        .collect();
    let hostfile = s.path(ssh::HOSTFILE);
    std::fs::write(&hostfile, ssh::hostfile(names.clone(), 2)).unwrap();
    let logs: Vec<PathBuf> = (0..2).map(|i| s.path(&format!("sshd-{i}.log"))).collect();
    for (i, log) in logs.iter().enumerate() {
        start_worker(&mut hosts, i, &s, &sshd_config, log);
    }
    let launcher = 2;
    hosts.resolve(launcher, &[(names[0].clone(), 0), (names[1].clone(), 1)]);

    let file = two_node_job(&s, "pods", 100, 3);
    let out = launch(&hosts, launcher, &s, &store, &ssh_config, &file, &hostfile);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["state"], "SUCCEEDED", "{summary}");
    let loss = crate::train::losses(&summary, "loss");
    assert!(loss.last().unwrap().1 < 0.1, "{loss:?}");
    assert!(!crate::train::losses(&summary, "rank-3/loss").is_empty());
    for (i, log) in logs.iter().enumerate() {
        // The launcher reached each worker with the job's key...
        let sshd = std::fs::read_to_string(log).unwrap();
        assert!(
            sshd.contains(&format!("Accepted publickey for {USER} ")),
            "worker {i}: {sshd}"
        );
        // ...and the ranks there worked in that worker's own home.
        let home = s.path(&format!("{WORKERS_JOB}-{i}-home"));
        assert!(
            std::fs::read_dir(&home).unwrap().next().is_some(),
            "worker {i}'s home is empty"
        );
    }

    // A launcher that does not know the workers' host key is refused by its own ssh: the job
    // fails naming why, instead of talking to whatever answers at the workers' names.
    let stranger = s.path("stranger");
    ssh::Keys::generate().unwrap().write_to(&stranger).unwrap();
    std::fs::copy(keys.join(ssh::CLIENT_KEY), stranger.join(ssh::CLIENT_KEY)).unwrap();
    keys_as_secret(&stranger, user.1);
    let wrong = s.path("wrong_ssh_config");
    std::fs::write(
        &wrong,
        ssh::ssh_config(stranger.to_str().unwrap(), ssh::PORT),
    )
    .unwrap();
    let file = two_node_job(&s, "stranger", 5, 0);
    let out = launch(&hosts, launcher, &s, &store, &wrong, &file, &hostfile);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("Host key verification failed"), "{log}");
}
