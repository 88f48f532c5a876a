//! The drill script itself keeps working (its full run is for people; here one scenario).

use integration::{netns_available, run_script};

#[test]
fn drill_plays_a_scenario_and_prints_the_outage() {
    if !netns_available("drill_plays_a_scenario_and_prints_the_outage", &["ip", "ping", "tcpdump"]) {
        return;
    }
    let output = run_script("drill.sh", &["--scenario", "graceful-stop"]);
    let row = output.lines().find(|l| l.starts_with("graceful stop")).unwrap_or_else(|| panic!("no row:\n{output}"));
    assert!(row.contains(" s "), "{row}");
}
