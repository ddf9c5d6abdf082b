//! Replays every saved input of each fuzz target (`fuzz/corpus/<target>/`, seeds and whatever
//! `scripts/fuzz.sh` found worth keeping) through the target's body, as a regular test: a
//! decoder that regresses on an input fuzzing once covered fails here, in CI, on stable.

use daos_tests::fuzz::TARGETS;
use daos_tests::repo_root;

#[test]
fn every_corpus_input_of_every_fuzz_target_is_handled() {
    let mut total = 0;
    for (name, body) in TARGETS {
        let dir = repo_root().join("fuzz/corpus").join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for fuzz target {name}");
        for f in &files {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "fuzz target {name} panics on {}", f.display());
        }
        eprintln!("fuzz target {name}: {} corpus inputs", files.len());
        total += files.len();
    }
    assert!(total >= TARGETS.len());
}
