//! Any bytes as a plan file: `drover_plan::load`, its diagnostics and, for a valid plan, its
//! graph and outlines (`drover_fuzz::plan`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| drover_fuzz::bounded(data, drover_fuzz::plan));
