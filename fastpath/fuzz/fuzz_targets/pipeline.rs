//! Fuzzes the pipeline's entry point: arbitrary frames from every ingress of two nodes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fastpath::fuzz::run_pipeline(data);
});
