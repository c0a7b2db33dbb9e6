//! Fuzz targets, run as tests with random inputs (`STRAND_FUZZ_ITERATIONS` of them, 20,000 by
//! default) and under libFuzzer by `cargo bolero test --package strand-meta --test meta
//! fuzz::<name>`: metadata commands and snapshots as a broker reads them from its log or from
//! a peer. None may panic; a command that decodes applies or is refused.

use strand_meta::{ClusterState, Command};

fn iterations() -> usize {
    std::env::var("STRAND_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

#[test]
fn commands_and_snapshots_from_any_bytes() {
    bolero::check!()
        .with_iterations(iterations())
        .for_each(|bytes: &[u8]| {
            if let Ok(command) = Command::from_bytes(bytes) {
                let mut state = ClusterState::default();
                let _ = state.apply(&command);
            }
            if let Ok(state) = ClusterState::from_bytes(bytes) {
                let _ = state.to_bytes();
            }
        });
}
