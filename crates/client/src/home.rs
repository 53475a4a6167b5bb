//! The one engine per home: the first to open a home holds an OS file lock on it for as long
//! as it lives (two engines on one store would fork its ratchets). See [`crate::local`] for
//! how other processes reach the engine that holds it.

use std::fs::{File, TryLockError};
use std::path::Path;

use crate::error::{ClientError, Result};
use crate::store::Store;

const LOCK_FILE: &str = "engine.lock";
/// The running engine's socket, in the home.
pub(crate) const SOCKET_FILE: &str = "engine.sock";

/// The OS lock on a home, held while the engine lives (released when the process ends, however
/// it ends).
pub(crate) struct HomeLock {
    _file: File,
}

impl HomeLock {
    pub fn take(home: &Path, creating: bool) -> Result<Self> {
        if !creating && !Store::exists(home) {
            return Err(ClientError::NotInitialized { home: home.display().to_string() });
        }
        std::fs::create_dir_all(home).map_err(|e| home_error(home, &e))?;
        let path = home.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| home_error(home, &e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(ClientError::Locked { home: home.display().to_string() }),
            Err(TryLockError::Error(e)) => Err(home_error(home, &e)),
        }
    }
}

fn home_error(home: &Path, e: &std::io::Error) -> ClientError {
    ClientError::Store { path: home.display().to_string(), why: e.to_string() }
}
