//! Lines of JSON records, sealed with the journal's hash chain, then read and replayed
//! (`drover_fuzz::journal_replay`): the checksums never stop the fuzzer at the first line.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    drover_fuzz::bounded(data, drover_fuzz::journal_replay);
});
