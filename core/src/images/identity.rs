//! What a large host file hashes to, remembered by what the file system says of it.
//!
//! The bundle image's tag and the probe copy's name are content hashes of static
//! binaries of several MiB, and reading and hashing them on every `up` is tens of
//! milliseconds. The answer is kept in the cache dir under a key made of the file's path,
//! device, inode, size, mtime and ctime. Any write or rename that can change the bytes
//! changes the ctime, which no user tool can set back, so a key that matches names the same
//! bytes and the content need not be read again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{cache_dir, content_hash};

/// The stat key of `path`, or `None` if it cannot be read (then nothing is remembered for it).
pub(crate) fn stat_key(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    let fields = [m.dev(), m.ino(), m.size()].map(|v| v as i64);
    let times = [m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()];
    let stat: Vec<u8> = fields.iter().chain(&times).flat_map(|v| v.to_le_bytes()).collect();
    Some(content_hash(&[path.as_os_str().as_encoded_bytes(), &stat]))
}

/// The remembered answers: one small file per kind and key.
pub(crate) struct Memo(PathBuf);

impl Memo {
    /// The one under this user's cache dir.
    pub(crate) fn in_cache() -> Self {
        Self(cache_dir().join("identity"))
    }

    fn path(&self, kind: &str, key: &str) -> PathBuf {
        self.0.join(format!("{kind}-{key}"))
    }

    /// What was remembered for `key` of `kind`, if anything.
    /// Nothing is taken from a folder another user could have written.
    pub(crate) fn recall(&self, kind: &str, key: &str) -> Option<String> {
        crate::paths::ensure_private_dir(&self.0).ok()?;
        std::fs::read_to_string(self.path(kind, key)).ok().filter(|v| !v.is_empty())
    }

    /// Remembers `value` for `key` of `kind`. Best effort: a cache that cannot be written
    /// only means the next `up` hashes again. Written aside and renamed, so a concurrent
    /// `up` reads the whole value or none.
    pub(crate) fn remember(&self, kind: &str, key: &str, value: &str) {
        if crate::paths::ensure_private_dir(&self.0).is_err() {
            return;
        }
        let tmp = self.0.join(format!(".{kind}-{key}-{}-{:016x}", std::process::id(), rand::random::<u64>()));
        if std::fs::write(&tmp, value).is_err() || std::fs::rename(&tmp, self.path(kind, key)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_file_gets_a_new_key_even_with_its_old_size_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin");
        std::fs::write(&f, b"one").unwrap();
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        let before = stat_key(&f).unwrap();
        assert_eq!(stat_key(&f).unwrap(), before, "an untouched file keeps its key");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&f, b"two").unwrap();
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
        assert_ne!(stat_key(&f).unwrap(), before, "same size and mtime, new ctime: a new key");
        assert!(stat_key(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn remembered_values_come_back_by_kind_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let memo = Memo(dir.path().join("identity"));
        assert_eq!(memo.recall("bundle-image", "k1"), None, "nothing remembered yet");
        memo.remember("bundle-image", "k1", "bottle-bundle:abc");
        assert_eq!(memo.recall("bundle-image", "k1").as_deref(), Some("bottle-bundle:abc"));
        assert_eq!(memo.recall("probe-file", "k1"), None);
        assert_eq!(memo.recall("bundle-image", "k2"), None);
    }
}
