//! Small, dependency-free helpers for `bench/bench.py`, compiled with `rustc -O` by
//! `bench/run.sh` (so the floor is measured without an interpreter in the way):
//!
//! - `floor N` — spawns `bash -c true` N times in sequence, stdout and stderr piped and read
//!   to the end (as `sop` captures step output); prints the elapsed seconds.
//! - `post ADDR PATH BODY N CONC` — N `POST`s (HTTP/1.1, one keep-alive connection per
//!   client), CONC clients at once; prints one line per request: `<latency_s> <body>`, then
//!   `total <seconds>`.
//! - `approve ADDR MARKDIR ID...` — for each run id in turn: `POST /api/runs/ID/approve`,
//!   notes the wall time when the answer arrived, waits until the next step wrote
//!   `MARKDIR/ID` (its `$EPOCHREALTIME` at start); prints `ID <answer_epoch_s>`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("floor") => floor(args[1].parse().expect("N")),
        Some("post") => post_many(
            &args[1],
            &args[2],
            &args[3],
            args[4].parse().expect("N"),
            args[5].parse().expect("CONC"),
        ),
        Some("approve") => approve(&args[1], &args[2], &args[3..]),
        _ => {
            eprintln!("usage: benchtool floor N | post ADDR PATH BODY N CONC | approve ADDR MARKDIR ID...");
            std::process::exit(2);
        }
    }
}

fn floor(n: usize) {
    let t = Instant::now();
    for _ in 0..n {
        let out = Command::new("bash")
            .args(["-c", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("spawn bash");
        assert!(out.status.success());
    }
    println!("{:.6}", t.elapsed().as_secs_f64());
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    addr: String,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn new(addr: &str) -> Conn {
        Conn {
            addr: addr.to_string(),
            reader: None,
        }
    }

    fn post(&mut self, path: &str, body: &str) -> (u16, String) {
        for attempt in 0..3 {
            if self.reader.is_none() {
                let s = TcpStream::connect(&self.addr).expect("connect");
                s.set_nodelay(true).ok();
                self.reader = Some(BufReader::new(s));
            }
            match self.try_post(path, body) {
                Ok(r) => return r,
                Err(e) => {
                    self.reader = None;
                    if attempt == 2 {
                        panic!("POST {path}: {e}");
                    }
                }
            }
        }
        unreachable!()
    }

    fn try_post(&mut self, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let r = self.reader.as_mut().expect("connected");
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        r.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        let mut close = false;
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf)?;
        if close {
            self.reader = None;
        }
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}

fn post_many(addr: &str, path: &str, body: &str, n: usize, conc: usize) {
    let next = Arc::new(Mutex::new(0usize));
    let results = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let t = Instant::now();
    let threads: Vec<_> = (0..conc)
        .map(|_| {
            let (next, results) = (Arc::clone(&next), Arc::clone(&results));
            let (addr, path, body) = (addr.to_string(), path.to_string(), body.to_string());
            std::thread::spawn(move || {
                let mut conn = Conn::new(&addr);
                loop {
                    {
                        let mut i = next.lock().unwrap();
                        if *i >= n {
                            return;
                        }
                        *i += 1;
                    }
                    let s = Instant::now();
                    let (status, answer) = conn.post(&path, &body);
                    let lat = s.elapsed().as_secs_f64();
                    assert!((200..300).contains(&status), "HTTP {status}: {answer}");
                    results.lock().unwrap().push((lat, answer));
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("client thread");
    }
    let total = t.elapsed().as_secs_f64();
    let out = std::io::stdout();
    let mut out = out.lock();
    for (lat, answer) in results.lock().unwrap().iter() {
        writeln!(out, "{lat:.6} {}", answer.replace('\n', " ")).unwrap();
    }
    writeln!(out, "total {total:.6}").unwrap();
}

fn approve(addr: &str, markdir: &str, ids: &[String]) {
    let mut conn = Conn::new(addr);
    for id in ids {
        let (status, answer) = conn.post(&format!("/api/runs/{id}/approve"), "{}");
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((200..300).contains(&status), "HTTP {status}: {answer}");
        let mark = std::path::Path::new(markdir).join(id);
        let give_up = Instant::now() + Duration::from_secs(30);
        while !mark.exists() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_micros(500));
        }
        println!("{id} {at:.6}");
    }
}
