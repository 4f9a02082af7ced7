//! The bundled charts (`src/bundled.rs`) are embedded with include_dir, which cannot tell cargo to rebuild
//! when they change.
fn main() {
    println!("cargo:rerun-if-changed=../../charts/workflow");
    println!("cargo:rerun-if-changed=../../charts/dask");
    println!("cargo:rerun-if-changed=../../charts/vis-receive");
}
