//! Generates the contract's Rust from `schemas/` (and from every release under
//! `schemas/releases/`), so the `.avsc` files are the only place the contract is written.

use std::path::{Path, PathBuf};

use codegen::Catalog;
use codegen::rust::{Options, generate};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let schemas = manifest.join("../../schemas");
    println!("cargo::rerun-if-changed={}", schemas.display());

    let options = Options { root_namespace: "usermgmt", module_path: "crate", runtime_path: "crate" };
    write(&out.join("contract.rs"), &generated(&schemas, &options));

    let mut releases = String::new();
    for (number, dir) in codegen::releases(&schemas.join("releases")) {
        let module_path = format!("crate::releases::v{number}");
        let code = generated(&dir, &Options { module_path: &module_path, ..options });
        releases.push_str(&format!(
            "/// The contract as released in version {number}.\npub mod v{number} {{\n{code}}}\n\n"
        ));
    }
    write(&out.join("releases.rs"), &releases);
}

fn generated(dir: &Path, options: &Options<'_>) -> String {
    Catalog::load(dir).and_then(|catalog| generate(&catalog, options)).unwrap_or_else(|error| panic!("{error}"))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
