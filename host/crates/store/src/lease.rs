//! One executor per run at a time.
//!
//! Two `pipeline resume R` at once (or a runner pod restarted while the old one still runs)
//! would both execute what is left of R, recording each task two or three times. Before it
//! executes anything, a process takes R's lease, a row in the metadata store (so it holds
//! across runners sharing PostgreSQL), renews it while it runs and gives it back at the end.
//! A lease whose holder is gone — a process on this host that no longer exists, or a holder
//! anywhere that stopped renewing for [`STALE_AFTER`] — is taken over, so a `kill -9` never
//! locks a run for good. Takeover is a compare-and-swap on the holder, so two contenders
//! cannot both win.

use crate::{MetadataStore, Result, StoreError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

/// A holder that has not renewed for this long (another host, or a hung process) has lost
/// the lease.
pub const STALE_AFTER: Duration = Duration::from_secs(30);
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Who holds a run, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Unique per acquisition: `host:pid:nanos`.
    pub owner: String,
    pub host: String,
    pub pid: u32,
    /// When it was taken, and last renewed (RFC 3339).
    pub since: String,
    pub renewed_at: String,
}

impl Lease {
    fn mine() -> Lease {
        let host = hostname();
        let pid = std::process::id();
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let now = crate::now();
        Lease {
            owner: format!("{host}:{pid}:{nanos}"),
            host,
            pid,
            since: now.clone(),
            renewed_at: now,
        }
    }

    /// Whether this stored lease no longer holds at `now`.
    fn lapsed(&self, now: SystemTime, stale: Duration) -> bool {
        if self.host == hostname() && !process_alive(self.pid) {
            return true;
        }
        match humantime::parse_rfc3339_weak(&self.renewed_at) {
            Ok(at) => now.duration_since(at).unwrap_or_default() > stale,
            // A timestamp no writer of ours makes: nobody can be said to hold it.
            Err(_) => true,
        }
    }
}

/// The lease of one run, held until dropped; a thread renews it meanwhile.
pub struct RunLease {
    meta: Arc<MetadataStore>,
    run: String,
    owner: String,
    stop: Arc<(Mutex<bool>, Condvar)>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl RunLease {
    /// Takes run `run` for this process, or says who holds it
    /// ([`StoreError::RunHeld`]).
    ///
    /// A holder on this host is alive or not (its pid says so at once). A holder elsewhere can
    /// only be judged by its renewals, so a runner restarted on another node waits up to
    /// [`STALE_AFTER`] (and one renewal) for a dead predecessor's lease to lapse rather than
    /// failing at once.
    pub fn acquire(meta: Arc<MetadataStore>, run: &str) -> Result<RunLease> {
        Self::acquire_waiting(meta, run, STALE_AFTER + RENEW_EVERY)
    }

    /// [`acquire`](Self::acquire), waiting at most `wait` for a holder on another host.
    pub fn acquire_waiting(
        meta: Arc<MetadataStore>,
        run: &str,
        wait: Duration,
    ) -> Result<RunLease> {
        let mine = Lease::mine();
        let deadline = std::time::Instant::now() + wait;
        // Another contender can win between the read and the swap: read again, a few times.
        let mut lost_races = 0;
        loop {
            let expected = match meta.lease_get(run)? {
                None => None,
                Some(held) if held.lapsed(SystemTime::now(), STALE_AFTER) => {
                    tracing::warn!(run, holder = %held.owner, "taking over the lease of a run whose holder is gone");
                    Some(held.owner)
                }
                Some(held) if held.host != mine.host && std::time::Instant::now() < deadline => {
                    tracing::info!(run, holder = %held.owner, "the run is held on another host; waiting for its lease to lapse");
                    std::thread::sleep(Duration::from_secs(1).min(wait));
                    continue;
                }
                Some(held) => {
                    return Err(StoreError::RunHeld {
                        run: run.to_string(),
                        pid: held.pid,
                        host: held.host,
                        since: held.since,
                    })
                }
            };
            if meta.lease_put(run, &mine, expected.as_deref())? {
                return Ok(Self::hold(meta, run, mine.owner));
            }
            lost_races += 1;
            if lost_races >= 5 {
                return Err(StoreError::Invalid(format!(
                    "run {run}: could not take its lease (other processes keep taking it)"
                )));
            }
        }
    }

    fn hold(meta: Arc<MetadataStore>, run: &str, owner: String) -> RunLease {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let renewer = {
            let (meta, run, owner, stop) =
                (meta.clone(), run.to_string(), owner.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("lease {run}"))
                .spawn(move || renew_until_stopped(&meta, &run, &owner, &stop))
                .ok()
        };
        RunLease {
            meta,
            run: run.to_string(),
            owner,
            stop,
            renewer,
        }
    }
}

fn renew_until_stopped(
    meta: &MetadataStore,
    run: &str,
    owner: &str,
    stop: &(Mutex<bool>, Condvar),
) {
    let (lock, cvar) = stop;
    let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
    while !*stopped {
        stopped = cvar
            .wait_timeout(stopped, RENEW_EVERY)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if *stopped {
            break;
        }
        match meta.lease_renew(run, owner, &crate::now()) {
            Ok(true) => {}
            Ok(false) => tracing::error!(run, "lost the run's lease to another process"),
            // A blip in the database: the next renewal may go through, well within STALE_AFTER.
            Err(e) => tracing::warn!(run, error = %e, "could not renew the run's lease"),
        }
    }
}

impl Drop for RunLease {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        if let Err(e) = self.meta.lease_release(&self.run, &self.owner) {
            tracing::warn!(run = %self.run, error = %e, "could not release the run's lease; it lapses by itself");
        }
    }
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Whether process `pid` exists (signal 0; EPERM means it exists under another user).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(host: &str, pid: u32, renewed_at: SystemTime) -> Lease {
        Lease {
            owner: "x".into(),
            host: host.into(),
            pid,
            since: crate::now(),
            renewed_at: humantime::format_rfc3339_micros(renewed_at).to_string(),
        }
    }

    #[test]
    fn a_lease_lapses_when_its_process_is_gone_or_it_stops_being_renewed() {
        let now = SystemTime::now();
        let me = std::process::id();
        assert!(!lease(&hostname(), me, now).lapsed(now, STALE_AFTER));
        // Elsewhere: only the renewal time can tell.
        assert!(!lease("elsewhere", u32::MAX, now).lapsed(now, STALE_AFTER));
        assert!(lease("elsewhere", me, now - 2 * STALE_AFTER).lapsed(now, STALE_AFTER));
        // Here, a pid that cannot exist.
        assert!(lease(&hostname(), u32::MAX, now).lapsed(now, STALE_AFTER));
        let mut garbled = lease("elsewhere", me, now);
        garbled.renewed_at = "yesterday".into();
        assert!(garbled.lapsed(now, STALE_AFTER));
    }
}
