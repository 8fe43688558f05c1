//! The state directory's lock: one writer at a time. `archlab run` holds an exclusive OS file
//! lock (flock) on `STATE/archlab.lock` for its whole life, and writes its pid and command into
//! the file so that a second writer can say who holds it. The kernel drops the lock when its
//! holder dies, however it dies, so a lock left by a killed run is taken over by the next one:
//! the file's contents are only a label, never what decides.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the state directory.
pub const LOCK_FILE: &str = "archlab.lock";

/// Most of the lock file read back to name its holder (it is ours, but may be anything).
const LABEL_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{state} is in use by another archlab ({holder}); wait for it to end, or give this one another --state"
    )]
    Held { state: String, holder: String },
    #[error("locking {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Held while a process writes to a state directory; released when dropped or when the
/// process dies.
#[derive(Debug)]
pub struct StateLock {
    // The OS lock lives as long as this open file.
    file: File,
    path: PathBuf,
    /// The label of a holder that died without releasing the lock, when there was one.
    pub taken_over: Option<String>,
}

impl StateLock {
    /// Takes the lock at once or fails naming its holder; never waits.
    pub fn acquire(state: &Path) -> Result<StateLock, LockError> {
        let path = state.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(state).map_err(io)?;
        // Not truncated on open: until the lock is ours, the file is the holder's label.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    state: state.display().to_string(),
                    holder: label(&mut file)
                        .unwrap_or_else(|| "a process that wrote no pid".into()),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        // Ours now: whatever the file names is a holder that died holding it.
        let taken_over = label(&mut file);
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let command: Vec<String> = std::env::args().collect();
        writeln!(
            file,
            "pid {}, `{}`",
            std::process::id(),
            command.join(" ").chars().take(300).collect::<String>()
        )
        .and_then(|()| file.sync_data())
        .map_err(io)?;
        Ok(StateLock {
            file,
            path,
            taken_over,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    /// A holder that ends cleanly leaves an empty label, so that only one that died names itself
    /// to the next (the file stays: removing it would let two processes lock two files).
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// The holder's label as written into the lock file (its first line), if any.
fn label(file: &mut File) -> Option<String> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(LABEL_BYTES).read_to_string(&mut text).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_state_is_refused_naming_the_holder_and_free_once_dropped() {
        let dir = std::env::temp_dir().join(format!("archlab-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = StateLock::acquire(&dir).expect("the first lock");
        assert_eq!(first.taken_over, None);
        // Another open file description: flock refuses it as it would another process.
        let error = StateLock::acquire(&dir).expect_err("the state is locked");
        let message = error.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("in use by another archlab"), "{message}");
        drop(first);
        let again = StateLock::acquire(&dir).expect("free once the holder is gone");
        // A holder that released the lock is not one that died holding it.
        assert_eq!(again.taken_over, None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
