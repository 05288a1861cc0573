//! Durability under `kill -9`: a child process writes keys and reports each completed write;
//! the parent kills it mid-stream and checks that every confirmed write is in the database.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lightning::util::persist::KVStoreSync;

use super::TempDir;
use crate::SqliteStore;

/// When set, [`crash_writer_child`] acts as the writer process, using this store directory.
const WRITER_DIR_ENV: &str = "MICRONODE_STORE_CRASH_WRITER_DIR";
const NAMESPACE: &str = "crash";
const MAX_KEYS: usize = 1_000_000;
const CONFIRMED_BEFORE_KILL: usize = 200;

fn key(i: usize) -> String {
    format!("key{i}")
}

fn value(i: usize) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    let len = 64 + (i * 37) % 2048;
    v.extend((0..len).map(|j| (i + j) as u8));
    v
}

/// Writer half of [`confirmed_writes_survive_sigkill`]; a no-op unless `WRITER_DIR_ENV` is set.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(WRITER_DIR_ENV) else {
        return;
    };
    let store = SqliteStore::open(dir.as_ref()).expect("child: open store");
    let mut stdout = std::io::stdout();
    for i in 0..MAX_KEYS {
        store
            .write(NAMESPACE, "", &key(i), value(i))
            .expect("child: write");
        store
            .write(NAMESPACE, "", "latest", i.to_string().into_bytes())
            .expect("child: write");
        // Exit (rather than linger) if the parent has gone away.
        if writeln!(stdout, "written {i}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
    }
    // Wait to be killed, but never outlive a parent that forgot about us for long.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn confirmed_writes_survive_sigkill() {
    let dir = TempDir::new("crash");
    // The test name as libtest knows it: module path without the crate name.
    let module = module_path!();
    let module = module.split_once("::").map_or(module, |(_, rest)| rest);
    let test_name = format!("{module}::crash_writer_child");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            test_name.as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_DIR_ENV, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn writer child");

    // Forward every confirmation ("written K") from the child's stdout until EOF.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<usize>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may print its own text on the same line; look for our marker anywhere.
            if let Some(pos) = line.find("written ") {
                let n: usize = line[pos + "written ".len()..].trim().parse().unwrap();
                if tx.send(n).is_err() {
                    break;
                }
            }
        }
    });

    let mut confirmed: Option<usize> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while confirmed.map_or(0, |n| n + 1) < CONFIRMED_BEFORE_KILL {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(remaining) {
            Ok(n) => confirmed = Some(n),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("writer child stopped confirming writes after {confirmed:?}: {e}");
            }
        }
    }
    child.kill().expect("SIGKILL writer child");
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "child must have been killed, got {status}"
    );
    // Lines already in the pipe were printed after their writes returned: they count too.
    for n in rx.iter() {
        confirmed = Some(n);
    }
    reader.join().unwrap();
    let confirmed = confirmed.expect("at least one confirmed write");
    assert!(confirmed + 1 >= CONFIRMED_BEFORE_KILL);

    let store = SqliteStore::open(dir.path()).expect("reopen after SIGKILL");
    for i in 0..=confirmed {
        let got = store.read(NAMESPACE, "", &key(i)).unwrap_or_else(|e| {
            panic!("confirmed write {i} (of {confirmed}) lost after SIGKILL: {e}")
        });
        assert_eq!(got, value(i), "value of confirmed write {i} corrupted");
    }
    let latest = store.read(NAMESPACE, "", "latest").unwrap();
    let latest: usize = String::from_utf8(latest).unwrap().parse().unwrap();
    assert!(
        latest >= confirmed,
        "latest={latest} < confirmed={confirmed}"
    );
    eprintln!("SIGKILL test: {} confirmed, latest={latest}", confirmed + 1);
    // Writes the child completed but had not yet reported may also be present, and nothing else.
    let keys = store.list(NAMESPACE, "").unwrap();
    assert!(
        keys.len() > confirmed + 1,
        "{} keys for {confirmed} confirmed",
        keys.len()
    );
    assert!(
        keys.len() <= latest + 3,
        "{} keys for latest={latest}",
        keys.len()
    );
}
