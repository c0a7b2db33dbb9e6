//! openraft's own storage test suite, run against the log store over the partition log and the
//! group state machine.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use strand_log::LogConfig;
use strand_raft::{GroupStateMachine, LogStore, NoMachine, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, GroupStateMachine<NoMachine>, tempfile::TempDir>
    for Builder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, GroupStateMachine<NoMachine>), StorageError<TypeConfig>>
    {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = LogStore::open(dir.path(), LogConfig::default(), 0, Default::default())
            .expect("log store opens");
        let sm = GroupStateMachine::open(dir.path(), store.log(), NoMachine)
            .expect("state machine opens");
        Ok((dir, store, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_over_the_partition_log() {
    Suite::test_all(Builder).await.expect("storage suite");
}
