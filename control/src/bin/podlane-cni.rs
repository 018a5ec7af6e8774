//! `podlane-cni`: the `podlane` CNI plugin, installed as `/opt/cni/bin/podlane`. All the logic
//! is in [`control::cni`].
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(control::cni::run_process());
}
