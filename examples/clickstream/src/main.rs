//! `clickstream-runner`: the runner with this crate's functions and operation. It has every
//! command of `runner`; `job.toml` next to this crate uses what it brings.

use std::process::ExitCode;

use runner::{Extensions, Main, Param, ParamKind};

mod functions;
mod pseudonym;
mod sessions;

fn main() -> ExitCode {
    Extensions::new()
        .text_function("ua_family", functions::UA_FAMILY_VERSION, functions::ua_family)
        .text_function("url_host", functions::URL_HOST_VERSION, functions::url_host)
        .text_function("pseudonym", pseudonym::VERSION, pseudonym::pseudonym)
        .number_function("haversine_km", functions::HAVERSINE_VERSION, 4, functions::haversine_km)
        .table_op(
            "sessionize",
            sessions::VERSION,
            vec![
                Param::required("by", ParamKind::Text),
                Param::required("ts", ParamKind::Text),
                Param::required("gap_minutes", ParamKind::Float),
            ],
            sessions::sessionize,
        )
        .main()
}
