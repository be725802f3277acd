//! The docs stay honest: every long flag `mio-sse --help` prints is in docs/flags.md, every `docs/*.md`
//! the README links to exists, and the README stays a tour (at most 200 lines).
//!
//! The check itself is in `support/flags.rs`, which the load generator's crate includes to run the same
//! check on `mio-sse-load <mode> --help`.

use std::path::Path;
use std::process::Command;

#[path = "support/flags.rs"]
mod flags;
use flags::{long_flags, missing_flags};

const README_MAX_LINES: usize = 200;

fn root(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_flag_of_mio_sse_help_is_in_docs_flags_md() {
    let output = Command::new(env!("CARGO_BIN_EXE_mio-sse")).arg("--help").output().expect("mio-sse --help");
    assert!(output.status.success(), "mio-sse --help failed: {output:?}");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    assert!(long_flags(&help).contains("--listen"), "no flags found in the help text:\n{help}");
    let missing = missing_flags(&help, &root("docs/flags.md"));
    assert!(missing.is_empty(), "docs/flags.md does not name these flags of `mio-sse --help`: {missing:?}");
}

#[test]
fn every_docs_page_the_readme_links_to_exists() {
    let readme = root("README.md");
    let links: Vec<&str> = readme
        .match_indices("](docs/")
        .map(|(at, _)| &readme[at + 2..])
        .filter_map(|rest| rest.split(&[')', '#'][..]).next())
        .collect();
    assert!(!links.is_empty(), "README links to no page in docs/");
    let missing: Vec<&&str> =
        links.iter().filter(|link| !Path::new(env!("CARGO_MANIFEST_DIR")).join(link).is_file()).collect();
    assert!(missing.is_empty(), "README links to pages that do not exist: {missing:?}");
}

#[test]
fn the_readme_is_a_tour_of_at_most_200_lines() {
    let lines = root("README.md").lines().count();
    assert!(lines <= README_MAX_LINES, "README.md has {lines} lines; reference material goes to docs/");
}

#[test]
fn flags_are_found_as_whole_words() {
    let help = "      --listen <LISTEN>\n      --max-connections <N>\n  -h, --help\n see --retry-ms.";
    let flags: Vec<String> = long_flags(help).into_iter().collect();
    assert_eq!(flags, ["--help", "--listen", "--max-connections", "--retry-ms"]);
    assert_eq!(
        missing_flags(help, "`--listen`, `--max-connections-x`, --help, `--retry-ms N`"),
        ["--max-connections"]
    );
    assert!(long_flags("a--b and --- and -- alone").is_empty());
}
