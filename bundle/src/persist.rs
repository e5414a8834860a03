//! What must outlive the bundle process: the kill switch, the host's policy,
//! live grants and the event epoch.
//!
//! The engine restarts a bundle that died (an OOM kill, a crash). Whatever
//! lived only in memory would come back at its config default, and for the
//! kill switch and a policy the host tightened that default is looser: a
//! restart would quietly undo the host's decision. So each change is written
//! here before it is answered, and a start reads it back before any listener
//! binds. Each start also takes the next epoch, which prefixes every event id
//! (see [`crate::events`]), so the ids of one bottle never repeat.
//!
//! Writes go to a temporary file that is synced and renamed over the old one,
//! so a reader sees the old state or the new, never half of one. A file that
//! is there but cannot be read fails closed: the kill switch comes back
//! engaged, and the host is told why.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bottle_protocol::control::PolicyUpdate;
use serde::{Deserialize, Serialize};

/// Everything one start leaves for the next.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    /// The epoch of the start that wrote this.
    pub epoch: u32,
    pub kill_switch: bool,
    /// The lists the host last set; `None` while they are the config's.
    pub policy: Option<PolicyUpdate>,
    pub grants: Vec<SavedGrant>,
}

/// A live grant from an approved access request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedGrant {
    pub id: String,
    /// The allow entry as written (`host`, `host:port`).
    pub entry: String,
    /// When it ends, in Unix milliseconds; `None` never.
    pub expires_unix_ms: Option<u64>,
}

impl SavedGrant {
    pub fn new(id: &str, entry: &str, expires: Option<Instant>) -> Self {
        let expires_unix_ms = expires.map(|at| {
            let left = at.saturating_duration_since(Instant::now());
            unix_ms(SystemTime::now() + left)
        });
        Self { id: id.into(), entry: entry.into(), expires_unix_ms }
    }

    /// When it ends on this process's clock (`Some(None)`: never); `None` once it has.
    pub fn expires(&self) -> Option<Option<Instant>> {
        let Some(at) = self.expires_unix_ms else { return Some(None) };
        let left = at.saturating_sub(unix_ms(SystemTime::now()));
        (left > 0).then(|| Some(Instant::now() + Duration::from_millis(left)))
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// What a start found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// No file: the bottle's first start (or no state file configured).
    First,
    /// The state a previous start left.
    Restored(Saved),
    /// A file that does not read as state; the reason.
    Unreadable(String),
}

impl Found {
    /// The epoch this start takes. An unreadable file's epoch is lost, so the clock's
    /// minutes stand in: past any count a bottle's restarts could reach.
    pub fn next_epoch(&self) -> u32 {
        match self {
            Found::First => 0,
            Found::Restored(s) => s.epoch.saturating_add(1),
            Found::Unreadable(_) => (unix_ms(SystemTime::now()) / 60_000) as u32,
        }
    }
}

pub struct Store {
    path: Option<PathBuf>,
    /// One writer at a time, so the last snapshot taken is the last one written.
    write: Mutex<()>,
}

impl Store {
    /// Reads what a previous start left at `path`.
    pub fn open(path: Option<&Path>) -> (Self, Found) {
        let found = match path.map(std::fs::read) {
            None => Found::First,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Found::First,
            Some(Err(e)) => Found::Unreadable(format!("reading it: {e}")),
            Some(Ok(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(saved) => Found::Restored(saved),
                Err(e) => Found::Unreadable(format!("it is not bundle state: {e}")),
            },
        };
        (Self { path: path.map(Path::to_path_buf), write: Mutex::new(()) }, found)
    }

    /// Writes the state `snapshot` takes, under the writer lock.
    pub fn save(&self, snapshot: impl FnOnce() -> Saved) -> anyhow::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let _one = self.write.lock().expect("state writer poisoned");
        let bytes = serde_json::to_vec(&snapshot())?;
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().with_context(|| format!("state_file {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_comes_back_and_takes_the_next_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (store, found) = Store::open(Some(&path));
        assert_eq!(found, Found::First);
        assert_eq!(found.next_epoch(), 0);
        let saved = Saved {
            epoch: 3,
            kill_switch: true,
            policy: Some(PolicyUpdate { allow: vec!["a.test".into()], deny: vec![] }),
            grants: vec![SavedGrant::new("r1", "b.test:443", None)],
        };
        store.save(|| saved.clone()).unwrap();
        let (_, found) = Store::open(Some(&path));
        assert_eq!(found.next_epoch(), 4);
        assert_eq!(found, Found::Restored(saved));
    }

    #[test]
    fn a_torn_file_fails_closed_with_a_fresh_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{\"epoch\": 2, \"kill_swi").unwrap();
        let (_, found) = Store::open(Some(&path));
        let Found::Unreadable(why) = &found else { panic!("{found:?}") };
        assert!(why.contains("not bundle state"), "{why}");
        assert!(found.next_epoch() > 1_000_000, "the clock's minutes outrun any restart count");
    }

    #[test]
    fn grant_deadlines_cross_the_restart_on_the_wall_clock() {
        let g = SavedGrant::new("r", "x.test", Some(Instant::now() + Duration::from_secs(60)));
        let left = g.expires().unwrap().unwrap().saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(60), "{left:?}");
        let over = SavedGrant { expires_unix_ms: Some(1), ..g };
        assert!(over.expires().is_none());
        assert_eq!(SavedGrant::new("r", "x.test", None).expires(), Some(None));
    }
}
