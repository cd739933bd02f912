//! The world on disk (`runs/<id>/sim.json`): loaded by [`crate::SimCloud::load`], saved
//! atomically (a temporary file, synced, then renamed) after every change once
//! [`crate::SimCloud::persist_to`] is asked for. The format is [`World`]'s serde form.

use std::path::{Path, PathBuf};

use crate::world::World;

/// Errors loading or saving a simulator state file.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Reading or writing failed.
    #[error("simulator state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a simulator state.
    #[error("simulator state {path} is unreadable: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Reads a world saved by [`save`].
pub(crate) fn load(path: &Path) -> Result<World, SimError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| SimError::Io { path: path.to_owned(), source })?;
    serde_json::from_str(&text)
        .map_err(|e| SimError::Format { path: path.to_owned(), message: e.to_string() })
}

/// Writes `world` to `path` atomically.
pub(crate) fn save(path: &Path, world: &World) -> Result<(), SimError> {
    let io = |source| SimError::Io { path: path.to_owned(), source };
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec(world)
        .map_err(|e| SimError::Format { path: path.to_owned(), message: e.to_string() })?;
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_data().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}
