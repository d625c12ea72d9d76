#![no_main]
// The body lives in wire::fuzzing so the normal test suite runs it too.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzzing::tcp_ipv4_frame(data));
