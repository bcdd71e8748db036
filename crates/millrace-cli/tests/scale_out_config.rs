//! Pipeline-file errors of the scale-out settings (`connector`, `url`), located at
//! FILE:LINE:COLUMN; these need no server.

mod common;

use common::{millrace, pipeline_file};

fn check_fails(text: &str) -> (String, String) {
    let (_dir, file) = pipeline_file(text);
    let out = millrace()
        .args(["check", &file.display().to_string()])
        .output()
        .expect("run millrace check");
    assert_eq!(out.status.code(), Some(2));
    (
        file.display().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SOURCE: &str = "[source]\nkind = \"range\"\nend = 10\n";
const SINK: &str = "\n[sink]\nkind = \"sum\"\n";

#[test]
fn a_url_that_is_not_a_nats_url_is_an_error_at_the_url() {
    let text = format!("[pipeline]\nurl = \"http://host:4222\"\n\n{SOURCE}{SINK}");
    let (file, said) = check_fails(&text);
    assert!(
        said.contains(&format!(
            "{file}:2:7: `url` \"http://host:4222\" is not a NATS server URL"
        )),
        "{said}"
    );
}

#[test]
fn credentials_in_the_url_are_refused() {
    let text = format!("[pipeline]\nurl = \"nats://me:secret@host:4222\"\n\n{SOURCE}{SINK}");
    let (file, said) = check_fails(&text);
    assert!(said.contains(&format!("{file}:2:7:")), "{said}");
    assert!(said.contains("MILLRACE_NATS_CREDS"), "{said}");
}

#[test]
fn an_unknown_connector_is_an_error_at_its_value() {
    let text = format!("{SOURCE}\n[[stage]]\nkind = \"square\"\nconnector = \"kafka\"\n{SINK}");
    let (file, said) = check_fails(&text);
    assert!(
        said.contains(&format!(
            "{file}:7:13: `connector` must be \"nats\" or \"memory\""
        )),
        "{said}"
    );
}

#[cfg(feature = "nats")]
#[test]
fn a_flat_map_stage_marked_remote_is_an_error_naming_the_stage() {
    let text = format!(
        "{SOURCE}\n[[stage]]\nname = \"keep\"\nkind = \"grep\"\npattern = \"1\"\n\
         connector = \"nats\"\n{SINK}"
    );
    let (file, said) = check_fails(&text);
    assert!(
        said.contains(&format!("{file}:9:13: stage `keep` cannot run remotely")),
        "{said}"
    );
}

#[cfg(feature = "nats")]
#[test]
fn remote_stages_with_a_local_one_between_them_are_an_error_at_the_second_run() {
    let text = format!(
        "{SOURCE}\n[[stage]]\nkind = \"square\"\nconnector = \"nats\"\n\n[[stage]]\n\
         name = \"mid\"\nkind = \"square\"\n\n[[stage]]\nname = \"last\"\nkind = \"square\"\n\
         connector = \"nats\"\n{SINK}"
    );
    let (file, said) = check_fails(&text);
    assert!(
        said.contains(&format!(
            "{file}:16:13: the remote stages must be one run of consecutive stages: stage \
             `last` is remote, `mid` before it is not"
        )),
        "{said}"
    );
}

#[cfg(not(feature = "nats"))]
#[test]
fn connector_nats_without_the_feature_says_how_to_get_it() {
    let text = format!("{SOURCE}\n[[stage]]\nkind = \"square\"\nconnector = \"nats\"\n{SINK}");
    let (file, said) = check_fails(&text);
    assert!(
        said.contains(&format!(
            "{file}:7:13: this millrace was built without NATS support"
        )),
        "{said}"
    );
    assert!(said.contains("--features nats"), "{said}");
}

#[cfg(feature = "nats")]
#[test]
fn the_scale_out_example_checks_and_its_resolved_form_keeps_the_remote_stage_and_url() {
    let path = common::repo_root().join("examples/nats/scale_out.toml");
    let spec = millrace_cli::config::load(&path, &[]).expect("the example loads");
    let scale = spec.scale_out.clone().expect("a remote stage");
    assert_eq!(scale.stages(&spec)[0].name, "c");
    assert_eq!(scale.url, "nats://127.0.0.1:4222");
    let resolved = millrace_cli::commands::check::to_toml(&spec);
    let dir = path.parent().expect("examples/nats");
    let again = millrace_cli::config::load_str(&resolved, &spec.file, dir, &[])
        .unwrap_or_else(|e| panic!("the resolved form does not load: {e}\n{resolved}"));
    assert_eq!(again.scale_out, spec.scale_out);
}

#[cfg(feature = "nats")]
#[test]
fn a_pipeline_wide_connector_makes_every_stage_remote_but_those_marked_memory() {
    let text = format!(
        "[pipeline]\nconnector = \"nats\"\n\n{SOURCE}\n[[stage]]\nname = \"one\"\nkind = \"square\"\n\n\
         [[stage]]\nname = \"two\"\nkind = \"square\"\n\n[[stage]]\nname = \"kept\"\n\
         kind = \"scale\"\nfactor = 2\nconnector = \"memory\"\n{SINK}"
    );
    let spec = millrace_cli::config::load_str(&text, "p.toml", std::path::Path::new(""), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let scale = spec.scale_out.clone().expect("remote stages");
    let names: Vec<_> = scale
        .stages(&spec)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(scale.url, millrace_cli::config::connector::DEFAULT_URL);
}

#[cfg(feature = "nats")]
#[test]
fn a_remote_stage_that_would_stop_the_run_on_error_is_refused() {
    let text = format!(
        "{SOURCE}\n[[stage]]\nname = \"strict\"\nkind = \"square\"\non_error = \"stop\"\n\
         connector = \"nats\"\n{SINK}"
    );
    let (file, said) = check_fails(&text);
    assert!(
        said.contains(&format!(
            "{file}:9:13: stage `strict` runs remotely with on_error = \"stop\""
        )),
        "{said}"
    );
}

#[cfg(feature = "nats")]
#[test]
fn a_remote_stage_that_would_stop_after_its_retries_is_refused_naming_the_settings_as_written() {
    let text = format!(
        "{SOURCE}\n[[stage]]\nname = \"strict\"\nkind = \"square\"\non_error = \"retry\"\n\
         retry_then = \"stop\"\nconnector = \"nats\"\n{SINK}"
    );
    let (file, said) = check_fails(&text);
    assert!(
        said.contains(&format!(
            "{file}:10:13: stage `strict` runs remotely with on_error = \"retry\" with \
             retry_then = \"stop\": a failure there would stop only its worker"
        )),
        "{said}"
    );
}

#[cfg(feature = "nats")]
#[test]
fn input_order_set_from_the_command_line_on_a_remote_stage_is_refused_at_the_set() {
    let text = format!(
        "{SOURCE}\n[[stage]]\nname = \"sq\"\nkind = \"square\"\nconnector = \"nats\"\n{SINK}"
    );
    let (_dir, file) = pipeline_file(&text);
    let out = millrace()
        .args(["check", &file.display().to_string()])
        .args(["--set", "stage.sq.ordered=true"])
        .output()
        .expect("run millrace check");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("--set stage.sq.ordered=true"),
        "the error names the --set that asked for order: {said}"
    );
    assert!(
        said.contains("order is not kept across the broker"),
        "{said}"
    );
}

#[cfg(feature = "nats")]
#[test]
fn input_order_asked_for_at_or_after_a_remote_stage_is_refused() {
    // Order is not kept across the broker: the remote stage's outputs used to come back
    // in the order the workers finished them, silently (a file sink differed from line 11).
    let text = format!(
        "{SOURCE}\n[[stage]]\nname = \"sq\"\nkind = \"square\"\nordered = true\n\
         connector = \"nats\"\n\n[[stage]]\nname = \"after\"\nkind = \"scale\"\nfactor = 2\n\
         ordered = true\n{SINK}"
    );
    let (file, said) = check_fails(&text);
    assert!(
        said.contains(&format!(
            "{file}:8:11: stage `sq` asks for input order (ordered = true), but order is not \
             kept across the broker: its outputs come back in the order the workers finish them"
        )),
        "{said}"
    );
    assert!(
        said.contains("stage `after` asks for input order (ordered = true), but order is not"),
        "{said}"
    );
    // Before the remote stage, order holds (it is kept up to the broker).
    let text = format!(
        "[pipeline]\nname = \"keeps\"\n\n{SOURCE}\n[[stage]]\nname = \"first\"\nkind = \"square\"\n\
         ordered = true\n\n[[stage]]\nname = \"sq\"\nkind = \"square\"\nconnector = \"nats\"\n{SINK}"
    );
    let (_dir, file) = pipeline_file(&text);
    let out = millrace()
        .args(["check", &file.display().to_string()])
        .output()
        .expect("run millrace check");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(feature = "nats")]
#[test]
fn a_pipeline_name_that_cannot_name_the_job_is_refused() {
    let text = format!(
        "[pipeline]\nname = \"my pipeline\"\n\n{SOURCE}\n[[stage]]\nkind = \"square\"\n\
         connector = \"nats\"\n{SINK}"
    );
    let (file, said) = check_fails(&text);
    // Located at the name (it was at the first remote stage's `connector`).
    assert!(
        said.contains(&format!(
            "{file}:2:8: the pipeline's name `my pipeline` names its job on the NATS server"
        )),
        "{said}"
    );
    // Given by `--set`, the error is located there.
    let text = format!("{SOURCE}\n[[stage]]\nkind = \"square\"\nconnector = \"nats\"\n{SINK}");
    let (_dir, path) = pipeline_file(&text);
    let out = millrace()
        .args(["check", &path.display().to_string()])
        .args(["--set", "pipeline.name=bad.name"])
        .output()
        .expect("run millrace check");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("--set pipeline.name"), "{said}");
    assert!(
        said.contains("the pipeline's name `bad.name` names its job"),
        "{said}"
    );
}

#[test]
fn a_worker_count_on_the_command_line_beyond_what_a_file_allows_is_refused() {
    for bad in ["0", "5000", "many"] {
        let out = millrace()
            .args(["worker", "p.toml", "--stage", "sq", "--workers", bad])
            .output()
            .expect("run millrace worker");
        assert_eq!(out.status.code(), Some(2), "--workers {bad}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("expected a number from 1 to 1024"), "{said}");
    }
}
