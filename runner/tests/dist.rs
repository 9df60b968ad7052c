//! `runner dist`: the glibc check that keeps a binary the AMIs can't load out of the lake, and
//! the content-addressed upload whose printed entry is what `ec2.worker_binaries` takes.

mod support;

use std::process::Command;

use runner::dist::requirements;

fn dist(args: &[&str]) -> std::process::Output {
    Command::new(support::runner_bin()).arg("dist").args(args).output().unwrap()
}

#[test]
fn check_refuses_a_binary_that_needs_a_newer_glibc_and_names_the_symbols() {
    let bin = support::runner_bin();
    let needs = requirements(&std::fs::read(&bin).unwrap()).unwrap();
    assert_eq!(needs.arch, std::env::consts::ARCH.replace("aarch64", "arm64"));
    let (&(major, minor), symbols) = needs.glibc.iter().next_back().expect("a glibc-linked build needs some version");
    assert!(major == 2 && minor >= 17, "{needs:?}");
    let bin = bin.to_string_lossy();

    let newest = format!("{major}.{minor}");
    let out = dist(&["check", &bin, "--max-glibc", &newest]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("newest glibc needed {newest}")));

    let older = format!("{major}.{}", minor - 1);
    let out = dist(&["check", &bin, "--max-glibc", &older]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("GLIBC_{newest}")) && err.contains("make dist"), "{err}");
    if let Some(symbol) = symbols.first() {
        assert!(err.contains(symbol.as_str()), "the symbols that need it are named: {err}");
    }
}

#[test]
fn check_refuses_what_is_not_an_elf_binary() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("runner.sh");
    std::fs::write(&script, "#!/bin/sh\nexec runner \"$@\"\n").unwrap();
    let out = dist(&["check", &script.to_string_lossy()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a 64-bit little-endian ELF binary"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_stores_the_binary_under_its_sha256_and_prints_the_config_entry() {
    let moto = support::Moto::start();
    let aws = runner_backends::aws::AwsClients::for_endpoint(&moto.endpoint, "us-east-1").await;
    let s3 = aws.s3().await;
    s3.create_bucket().bucket("lake").send().await.unwrap();
    // A small ELF binary of this machine stands in for the runner (the upload reads its
    // headers the same way).
    let binary = std::path::Path::new("/bin/true");
    let newest = requirements(&std::fs::read(binary).unwrap()).unwrap();
    let max = newest.glibc.keys().next_back().map(|(a, b)| format!("{a}.{b}")).unwrap_or_else(|| "2.17".into());
    let upload = || {
        Command::new(support::runner_bin())
            .args(["dist", "upload", "/bin/true", "--to", "s3://lake/bin", "--max-glibc", &max])
            .envs(moto.env())
            .output()
            .unwrap()
    };
    let out = upload();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entry = String::from_utf8_lossy(&out.stdout).to_string();
    let parsed: toml::Table = toml::from_str(&entry).unwrap();
    let b = &parsed["worker_binaries"][newest.arch.as_str()];
    let (uri, sha) = (b["uri"].as_str().unwrap(), b["sha256"].as_str().unwrap());
    use sha2::Digest as _;
    let expected: String =
        sha2::Sha256::digest(std::fs::read(binary).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(sha, expected);
    assert_eq!(uri, format!("s3://lake/bin/{sha}/runner-{}", newest.arch));
    let got = s3.get_object().bucket("lake").key(uri.trim_start_matches("s3://lake/")).send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().to_vec(), std::fs::read(binary).unwrap());
    // Again: the same name holds the same content, so it succeeds and says the same.
    let again = upload();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(String::from_utf8_lossy(&again.stdout), entry);
}
