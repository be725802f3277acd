//! docs/flags.md names every flag of every `mio-sse-load` mode: the doc cannot drift from `--help`.
//! The check itself is the root crate's (tests/docs.rs), included here so both use one definition.

use std::process::Command;

#[path = "../../tests/support/flags.rs"]
mod docs;

#[test]
fn every_flag_of_every_mode_is_in_docs_flags_md() {
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/flags.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/flags.md");
    for mode in ["hold", "fanout", "churn", "storm", "stream", "bench"] {
        let out =
            Command::new(env!("CARGO_BIN_EXE_mio-sse-load")).args([mode, "--help"]).output().expect("run");
        assert!(out.status.success(), "{mode} --help: {out:?}");
        let help = String::from_utf8(out.stdout).expect("UTF-8 help");
        assert!(docs::long_flags(&help).len() > 2, "{mode}: no flags found:\n{help}");
        let missing = docs::missing_flags(&help, &doc);
        assert!(
            missing.is_empty(),
            "docs/flags.md does not name these flags of `{mode} --help`: {missing:?}"
        );
    }
}
