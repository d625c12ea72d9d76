//! A connection driven by arbitrary segments, application calls and timings
//! (tcp::fuzzing::connection): no panic, no broken invariant.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tcp::fuzzing::connection(data);
});
