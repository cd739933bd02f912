//! Any bytes as a journal file: `Journal::read_from`, then `RunState::replay`
//! (`drover_fuzz::journal`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| drover_fuzz::bounded(data, drover_fuzz::journal));
