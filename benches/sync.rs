//! Sync benchmarks (see BENCHMARKS.md). Not written yet.

fn main() {
    println!("sync benchmarks: not written yet");
}
