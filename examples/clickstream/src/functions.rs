//! Row functions a clickstream needs and SQL lacks, written as plain Rust over one row's values;
//! the runner turns each into a column function.

/// Bump a version when a function's output changes: Dagster then shows the steps that call it
/// as changed.
pub const UA_FAMILY_VERSION: &str = "1";
/// See [`UA_FAMILY_VERSION`].
pub const URL_HOST_VERSION: &str = "1";
/// See [`UA_FAMILY_VERSION`].
pub const HAVERSINE_VERSION: &str = "1";

/// The browser family of a user agent: `bot`, `Edge`, `Opera`, `Chrome`, `Firefox`, `Safari`,
/// or `Other`. The order matters: Edge and Opera agents also name Chrome, and Chrome's names Safari.
pub fn ua_family(agent: &str) -> Option<String> {
    let lower = agent.to_ascii_lowercase();
    let family = if ["bot", "crawler", "spider"].iter().any(|w| lower.contains(w)) {
        "bot"
    } else if agent.contains("Edg/") {
        "Edge"
    } else if agent.contains("OPR/") {
        "Opera"
    } else if agent.contains("Chrome/") {
        "Chrome"
    } else if agent.contains("Firefox/") {
        "Firefox"
    } else if agent.contains("Safari/") {
        "Safari"
    } else {
        "Other"
    };
    Some(family.to_string())
}

/// The host of a URL, lower-cased, without `www.` or a port; `None` when it has no host.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?.split(':').next()?.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
    (!host.is_empty()).then_some(host)
}

/// Great-circle distance in km between two points given in degrees (`lat1, lon1, lat2, lon2`),
/// on a sphere of the Earth's mean radius.
pub fn haversine_km(v: &[f64]) -> Option<f64> {
    const EARTH_KM: f64 = 6371.0088;
    let [lat1, lon1, lat2, lon2] = [v[0].to_radians(), v[1].to_radians(), v[2].to_radians(), v[3].to_radians()];
    let a = ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    Some(2.0 * EARTH_KM * a.sqrt().asin())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_families() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        assert_eq!(ua_family(chrome).as_deref(), Some("Chrome"));
        assert_eq!(ua_family(&format!("{chrome} Edg/120.0")).as_deref(), Some("Edge"));
        assert_eq!(
            ua_family("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15").as_deref(),
            Some("Safari")
        );
        assert_eq!(ua_family("Mozilla/5.0 (X11; rv:121.0) Gecko/20100101 Firefox/121.0").as_deref(), Some("Firefox"));
        assert_eq!(ua_family("Googlebot/2.1 (+http://www.google.com/bot.html)").as_deref(), Some("bot"));
        assert_eq!(ua_family("curl/8.0").as_deref(), Some("Other"));
    }

    #[test]
    fn hosts() {
        assert_eq!(url_host("https://WWW.Example.com:8443/a?b#c").as_deref(), Some("example.com"));
        assert_eq!(url_host("http://user@shop.example.org/x").as_deref(), Some("shop.example.org"));
        assert_eq!(url_host("example.net/path").as_deref(), Some("example.net"));
        assert_eq!(url_host("https:///nohost"), None);
    }

    #[test]
    fn distances() {
        // Berlin to Paris: about 878 km.
        let km = haversine_km(&[52.52, 13.405, 48.8566, 2.3522]).unwrap();
        assert!((km - 877.5).abs() < 1.0, "{km}");
        assert_eq!(haversine_km(&[10.0, 20.0, 10.0, 20.0]), Some(0.0));
    }
}
