//! Zone loading and its checks: every problem is reported with its file and line.

use std::path::{Path, PathBuf};

use dns::load_zone;

fn data(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(f)
}

#[test]
fn a_good_zone_with_an_include() {
    let z = load_zone(&data("example.test.zone"), None).unwrap();
    assert_eq!(dns::name::to_text(&z.apex), "example.test.");
    let inc = z
        .records
        .iter()
        .find(|r| dns::name::to_text(&r.owner) == "inc.example.test.")
        .unwrap();
    assert!(inc.file.ends_with("included.zone"));
    assert_eq!(inc.line, 1);
    let www = z
        .records
        .iter()
        .find(|r| dns::name::to_text(&r.owner) == "www.example.test.")
        .unwrap();
    assert_eq!(www.line, 17, "lines count from 1, multi-line SOA included");
}

#[test]
fn a_syntax_error_names_its_line() {
    let e = load_zone(&data("broken.zone"), None).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, Some(6), "{}", e[0]);
    assert!(e[0].to_string().contains("broken.zone:6"), "{}", e[0]);
}

#[test]
fn out_of_zone_data_is_rejected_with_its_line() {
    let e = load_zone(&data("outside.zone"), None).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, Some(4));
    assert!(e[0].message.contains("out-of-zone"), "{}", e[0]);
}

#[test]
fn a_zone_needs_its_soa() {
    let e = load_zone(&data("nosoa.zone"), None).unwrap_err();
    assert!(e[0].message.contains("no SOA"), "{}", e[0]);
}

#[test]
fn a_missing_file_says_so() {
    let e = load_zone(&data("does-not-exist.zone"), None).unwrap_err();
    assert!(e[0].message.contains("cannot read"), "{}", e[0]);
}

#[test]
fn the_configured_name_must_match_the_soa() {
    let e = load_zone(&data("example.test.zone"), Some("other.test")).unwrap_err();
    assert!(
        e.iter()
            .any(|e| e.message.contains("configured as other.test.")),
        "{e:?}"
    );
}
