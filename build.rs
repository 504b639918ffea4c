// `sqlx::migrate!` embeds migrations/ at compile time, and stable Rust
// cannot tell cargo that a proc macro read a directory: without this, a new
// migration is missing from the binary until something else rebuilds it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
