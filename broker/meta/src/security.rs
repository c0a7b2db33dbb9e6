//! Applying the security commands: Kafka ACLs and SCRAM credentials.

use strand_auth::{AclBinding, ScramCredential, ScramMechanism};

use crate::command::{Applied, CommandError};
use crate::state::ClusterState;

/// Longest SCRAM user name accepted, in bytes.
pub const MAX_SCRAM_USER_LEN: usize = 1024;

impl ClusterState {
    pub(crate) fn create_acls(&mut self, acls: &[AclBinding]) -> Result<Applied, CommandError> {
        for acl in acls {
            acl.validate()?;
        }
        let added = acls
            .iter()
            .filter(|acl| self.acls.insert((*acl).clone()))
            .count();
        Ok(Applied::AclsCreated { added })
    }

    pub(crate) fn delete_acls(&mut self, acls: &[AclBinding]) -> Applied {
        let removed = acls.iter().filter(|acl| self.acls.remove(*acl)).count();
        Applied::AclsDeleted { removed }
    }

    pub(crate) fn upsert_scram_credential(
        &mut self,
        user: &str,
        credential: &ScramCredential,
    ) -> Result<Applied, CommandError> {
        check_scram_user(user)?;
        let mechanism = credential.mechanism;
        let (min, max) = (mechanism.min_iterations(), strand_auth::MAX_ITERATIONS);
        if !(min..=max).contains(&credential.iterations) {
            return Err(CommandError::InvalidScramIterations {
                user: user.to_string(),
                mechanism: mechanism.name(),
                iterations: credential.iterations,
                min,
                max,
            });
        }
        self.scram
            .entry(user.to_string())
            .or_default()
            .insert(mechanism, credential.clone());
        Ok(Applied::ScramCredentialSet {
            user: user.to_string(),
        })
    }

    pub(crate) fn delete_scram_credential(
        &mut self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Applied, CommandError> {
        let unknown = || CommandError::UnknownScramCredential {
            user: user.to_string(),
            mechanism: mechanism.name(),
        };
        let credentials = self.scram.get_mut(user).ok_or_else(unknown)?;
        credentials.remove(&mechanism).ok_or_else(unknown)?;
        if credentials.is_empty() {
            self.scram.remove(user);
        }
        Ok(Applied::ScramCredentialDeleted {
            user: user.to_string(),
        })
    }
}

/// Kafka's rules for a SCRAM user name: not empty, not too long, no control characters.
pub fn check_scram_user(user: &str) -> Result<(), CommandError> {
    let invalid = |reason| CommandError::InvalidScramUser {
        user: user.chars().take(64).collect(),
        reason,
    };
    if user.is_empty() {
        return Err(invalid("it is empty"));
    }
    if user.len() > MAX_SCRAM_USER_LEN {
        return Err(invalid("it is longer than 1024 bytes"));
    }
    if user.chars().any(char::is_control) {
        return Err(invalid("it holds control characters"));
    }
    Ok(())
}
