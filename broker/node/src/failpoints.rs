//! Failpoints that hold back a broker's own work (see `strand_log::failpoints` for the
//! table of every failpoint). Compiled in only with the `failpoints` feature, which only test
//! builds turn on; without it [`holds`] is always false and costs nothing.

use std::path::Path;

/// Whether failpoint `name` is on for the broker whose data directory is `data_dir`: on with
/// `fail::cfg(name, "return(FRAGMENT)")` for every broker whose data directory's path contains
/// `FRAGMENT` (without an argument, for every broker), so that a test holds back its own
/// cluster and not the others sharing its process.
pub fn holds(name: &str, data_dir: &Path) -> bool {
    #[cfg(feature = "failpoints")]
    {
        fail::eval(name, |fragment| {
            fragment.is_none_or(|fragment| data_dir.to_string_lossy().contains(fragment.as_str()))
        })
        .unwrap_or(false)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = (name, data_dir);
        false
    }
}
