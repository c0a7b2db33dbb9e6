//! A broker's identity on disk: its broker id and the node id of this incarnation.
//!
//! A broker that starts with an empty data directory is a new incarnation with a new node id:
//! it never answers Raft messages meant for an earlier incarnation, whose votes and entries it
//! does not have.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What `identity.json` in the data directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The stable broker id.
    pub broker_id: u32,
    /// The Raft node id of this incarnation.
    pub node_id: u64,
}

/// Errors reading or creating the identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The file could not be read or written.
    #[error("identity file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The data directory belongs to another broker id.
    #[error(
        "data directory {dir} belongs to broker {found}, not broker {wanted}; \
         give each broker its own data directory"
    )]
    OtherBroker {
        /// The directory.
        dir: String,
        /// The broker id in the file.
        found: u32,
        /// The broker id configured.
        wanted: u32,
    },
}

/// Loads the identity in `dir`, or creates a new incarnation when there is none.
pub fn load_or_create(dir: &Path, broker_id: u32) -> Result<(Identity, bool), IdentityError> {
    let path = dir.join("identity.json");
    let io = |source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    };
    match fs::read(&path) {
        Ok(bytes) => {
            let identity: Identity = serde_json::from_slice(&bytes)
                .map_err(|e| io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
            if identity.broker_id != broker_id {
                return Err(IdentityError::OtherBroker {
                    dir: dir.display().to_string(),
                    found: identity.broker_id,
                    wanted: broker_id,
                });
            }
            Ok((identity, false))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io)?;
            // Random, so an incarnation never repeats; 0 is avoided because it reads as "unset".
            let node_id = uuid::Uuid::new_v4().as_u64_pair().0.max(1);
            let identity = Identity { broker_id, node_id };
            let bytes = serde_json::to_vec(&identity).map_err(|e| io(io::Error::other(e)))?;
            let tmp = path.with_extension("json.tmp");
            let mut file = fs::File::create(&tmp).map_err(io)?;
            file.write_all(&bytes).map_err(io)?;
            file.sync_all().map_err(io)?;
            fs::rename(&tmp, &path).map_err(io)?;
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            Ok((identity, true))
        }
        Err(e) => Err(io(e)),
    }
}
