//! Replays a fuzz input through the connection target, outside the fuzzer:
//! `TCP_FUZZ_TRACE=1 cargo run -p sluice-tcp --example fuzz_replay -- FILE`.
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: fuzz_replay FILE");
        std::process::exit(2);
    };
    match std::fs::read(&path) {
        Ok(data) => {
            let (state, delivered) = tcp::fuzzing::connection(&data);
            println!("ended in {state:?}, {delivered} bytes delivered");
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
}
