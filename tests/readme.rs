//! README.md's quick start is the crate documentation's first example, which runs as a
//! doctest: this keeps the two the same, so that the README's code is known to work.

fn code_block_after(text: &str, marker: &str) -> Vec<String> {
    let start = text.find(marker).unwrap_or_else(|| panic!("no `{marker}`"));
    text[start..]
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("```"))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("```"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn readme_quick_start_is_the_crate_doctest() {
    let readme = include_str!("../README.md");
    let in_readme = code_block_after(readme, "`src/main.rs`:");

    let lib = include_str!("../runtime/lib.rs");
    let crate_docs: String = lib
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| format!("{}\n", l.strip_prefix("//! ").unwrap_or(&l[3..])))
        .collect();
    let in_docs: Vec<String> = code_block_after(&crate_docs, "## Quick start")
        .into_iter()
        .filter(|l| !(l == "#" || l.starts_with("# ")))
        .collect();

    assert!(in_readme.len() > 20, "the quick start is in README.md");
    assert_eq!(in_readme, in_docs, "README.md and runtime/lib.rs differ");
}

#[test]
fn readme_set_up_commands() {
    let readme = include_str!("../README.md");
    let set_up = code_block_after(readme, "## Set-up");
    assert!(set_up[0].starts_with("cargo run --example bank "));
    assert!(set_up[1].starts_with("cargo test --workspace --all-features "));
    let ci = include_str!("../.ci/run");
    let last = ci.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert_eq!(
        last, "cargo test --workspace --all-features",
        "CI ends with it"
    );
}
