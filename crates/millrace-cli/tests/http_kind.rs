//! The `http` kind against a local server (127.0.0.1, an ephemeral port, a bounded number
//! of requests): bodies and statuses as outputs, in order when asked; a status outside 2xx,
//! a refused connection and a timeout each fail the item with a message naming the stage,
//! the URL and the item; text keys are percent-encoded.

mod common;

use std::time::Duration;

use common::http::{serve, Server};
use common::{millrace, pipeline_file};
use predicates::prelude::*;

const LIFE: Duration = Duration::from_secs(30);

/// `/items/N` → 200 `item N`; N ≡ 3 (mod 5) → 404.
fn items(path: &str) -> Option<(u16, String)> {
    let key = path.strip_prefix("/items/").unwrap_or(path);
    match key.parse::<u64>() {
        Ok(n) if n % 5 == 3 => Some((404, "no such item".into())),
        _ => Some((200, format!("item {key}"))),
    }
}

/// Never answers.
fn silent(_: &str) -> Option<(u16, String)> {
    None
}

fn pipeline(server_url: &str, end: u64, stage_extra: &str, sink: &str) -> String {
    format!(
        "[source]\nkind = \"range\"\nend = {end}\n\
         [[stage]]\nkind = \"http\"\nurl = \"{server_url}\"\nconcurrency = 8\n{stage_extra}\n\
         [sink]\n{sink}\n"
    )
}

#[test]
fn bodies_come_back_in_order() {
    let server: Server = serve(40, LIFE, |p| {
        Some((200, format!("item {}", p.trim_start_matches("/items/"))))
    });
    let (_dir, path) = pipeline_file(&pipeline(
        &server.url("/items/{}"),
        20,
        "ordered = true",
        "kind = \"stdout\"",
    ));
    let expected: String = (0..20).map(|i| format!("item {i}\n")).collect();
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--quiet")
        .assert()
        .success()
        .stdout(expected);
    let mut paths = server.finish();
    paths.sort_by_key(|p| p.trim_start_matches("/items/").parse::<u64>().unwrap_or(0));
    let wanted: Vec<String> = (0..20).map(|i| format!("/items/{i}")).collect();
    assert_eq!(paths, wanted);
}

#[test]
fn statuses_outside_2xx_fail_the_item_naming_stage_url_status_and_id() {
    let server = serve(40, LIFE, items);
    let url = server.url("/items/{}");
    let (_dir, path) = pipeline_file(&pipeline(
        &url,
        10,
        "name = \"fetch\"\noutput = \"status\"",
        "kind = \"sum\"",
    ));
    let failing = url.replace("{}", "3");
    millrace()
        .arg("run")
        .arg(&path)
        .assert()
        .code(3) // completed, but items failed
        .stdout("sum: 1600\n") // 8 items answered 200
        .stderr(predicate::str::contains(format!(
            "stage `fetch` failed on item #3: GET {failing} answered 404 Not Found"
        )))
        .stderr(predicate::str::contains("failed 2"));
    assert_eq!(server.finish().len(), 10);
}

#[test]
fn a_refused_connection_fails_the_item_with_the_url() {
    // A port that was just free: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/items/{{}}");
    let (_dir, path) = pipeline_file(&pipeline(
        &url,
        2,
        "on_error = \"stop\"",
        "kind = \"count\"",
    ));
    millrace()
        .arg("run")
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "failed on item #0: GET http://127.0.0.1:{port}/items/0: "
        )))
        .stderr(predicate::str::contains("onnect"));
}

#[test]
fn a_timeout_fails_items_that_get_no_answer() {
    let server = serve(10, LIFE, silent);
    let (_dir, path) = pipeline_file(&pipeline(
        &server.url("/wait/{}"),
        3,
        "timeout = \"200ms\"",
        "kind = \"count\"",
    ));
    millrace()
        .arg("run")
        .arg(&path)
        .assert()
        .code(3) // completed, but items failed
        .stdout("count: 0\n")
        .stderr(predicate::str::contains("timed out after 200ms"))
        .stderr(predicate::str::contains("failed 3"));
    drop(server);
}

#[test]
fn text_keys_are_percent_encoded_and_records_gain_the_body() {
    let server = serve(10, LIFE, |p| Some((200, format!("got {p}"))));
    let (dir, path) = pipeline_file(&format!(
        "[source]\nkind = \"lines\"\npath = \"names.txt\"\n\
         [[stage]]\nkind = \"http\"\nurl = \"{}\"\nfield = \"text\"\nordered = true\n\
         [sink]\nkind = \"stdout\"\nformat = \"json\"\n",
        server.url("/names/{}")
    ));
    std::fs::write(dir.path().join("names.txt"), "a b\nx/y\n").unwrap();
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--quiet")
        .assert()
        .success()
        .stdout(
            "{\"line\":1,\"text\":\"a b\",\"body\":\"got /names/a%20b\"}\n\
             {\"line\":2,\"text\":\"x/y\",\"body\":\"got /names/x%2Fy\"}\n",
        );
    let mut paths = server.finish();
    paths.sort();
    assert_eq!(paths, ["/names/a%20b", "/names/x%2Fy"]);
}

/// `millrace check` on `path`, which must refuse it as a config error (exit 2).
fn refused(path: &std::path::Path) -> assert_cmd::assert::Assert {
    millrace().arg("check").arg(path).assert().code(2)
}

#[test]
fn https_and_workers_are_config_errors() {
    let (_dir, path) = pipeline_file(&pipeline(
        "https://127.0.0.1:1/{}",
        1,
        "",
        "kind = \"count\"",
    ));
    refused(&path).stderr(predicate::str::contains("no TLS"));
    let (_dir, path) = pipeline_file(&pipeline(
        "http://127.0.0.1:1/{}",
        1,
        "workers = 4",
        "kind = \"count\"",
    ));
    refused(&path)
        .stderr(predicate::str::contains(
            "`workers` does not apply to `http`: `http` is an async stage",
        ))
        .stderr(predicate::str::contains("set `concurrency`"));
    // A bad url beside another bad parameter: both at once (the url came a round later).
    let (_dir, path) = pipeline_file(&pipeline(
        "ftp://127.0.0.1:1/{}",
        1,
        "timeout = \"abc\"",
        "kind = \"count\"",
    ));
    refused(&path)
        .stderr(predicate::str::contains("is not an http:// URL"))
        .stderr(predicate::str::contains("`timeout` must be a duration"))
        .stderr(predicate::str::contains("2 errors"));
}
