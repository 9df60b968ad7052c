//! A generator of realistic synthetic event data for the example pipeline: per day, web events
//! as headerless gzipped CSV and app events as gzipped NDJSON with nested records, with a
//! configurable size and a sprinkle of malformed rows. Deterministic for a seed.

use std::io::Write;
use std::path::Path;

use chrono::{Duration, NaiveDate};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Generate {
    /// First day.
    pub start: NaiveDate,
    /// Number of days.
    pub days: u32,
    /// Events per day (both sources together).
    pub events_per_day: u64,
    /// CSV files per day.
    pub csv_files_per_day: u32,
    /// Fraction of malformed rows (0.0–1.0).
    pub bad_fraction: f64,
    /// Users.
    pub users: u64,
    /// RNG seed.
    pub seed: u64,
}

impl Default for Generate {
    fn default() -> Self {
        Self {
            start: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default(),
            days: 3,
            events_per_day: 20_000,
            csv_files_per_day: 2,
            bad_fraction: 0.002,
            users: 5_000,
            seed: 7,
        }
    }
}

/// A small, fast, deterministic RNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const EVENTS: &[(&str, u64)] = &[("view", 70), ("click", 20), ("add_to_cart", 7), ("purchase", 3)];
const COUNTRIES: &[&str] = &["DE", "FR", "US", "GB", "ES", "IT", "NL", "PL", "SE", "BR", "IN", "JP"];
const DEVICES: &[&str] = &["desktop", "mobile", "tablet"];
const OSES: &[&str] = &["ios", "android"];

fn pick_event(rng: &mut Rng) -> &'static str {
    let mut roll = rng.below(100);
    for (name, weight) in EVENTS {
        if roll < *weight {
            return name;
        }
        roll -= weight;
    }
    "view"
}

/// Writes `raw/{day}/web-{n}.csv.gz` and `raw/{day}/app.ndjson.gz` under `root`. Returns the
/// number of files written.
pub fn generate(root: &Path, g: &Generate) -> std::io::Result<usize> {
    let mut files = 0;
    for d in 0..g.days {
        let day = g.start + Duration::days(i64::from(d));
        // Seeded per day: a day's data is the same whether generated alone or with others.
        let day_number = day.signed_duration_since(NaiveDate::default()).num_days() as u64;
        let mut rng = Rng((g.seed ^ day_number.wrapping_mul(0x9e37_79b9_7f4a_7c15)).max(1));
        let dir = root.join("raw").join(day.format("%Y-%m-%d").to_string());
        std::fs::create_dir_all(&dir)?;
        let web_events = g.events_per_day * 7 / 10;
        let app_events = g.events_per_day - web_events;
        let per_file = web_events.div_ceil(u64::from(g.csv_files_per_day.max(1)));
        let mut serial = 0u64;
        // Formatted once per day: chrono's formatter per row dominated generation time.
        let (day_tag, day_text) = (day.format("%Y%m%d").to_string(), day.format("%Y-%m-%d").to_string());
        let clock =
            |secs: u64, sep: char| format!("{day_text}{sep}{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        for f in 0..g.csv_files_per_day.max(1) {
            let path = dir.join(format!("web-{f:03}.csv.gz"));
            let mut out = std::io::BufWriter::with_capacity(
                1 << 16,
                flate2::write::GzEncoder::new(std::fs::File::create(&path)?, flate2::Compression::fast()),
            );
            for _ in 0..per_file.min(web_events.saturating_sub(u64::from(f) * per_file)) {
                serial += 1;
                let ts = clock(rng.below(86_400), ' ');
                let user = rng.below(g.users);
                let event = pick_event(&mut rng);
                let amount =
                    if event == "purchase" { format!("{:.2}", 5.0 + rng.unit() * 195.0) } else { String::new() };
                let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
                let device = DEVICES[rng.below(DEVICES.len() as u64) as usize];
                if rng.unit() < g.bad_fraction {
                    // Malformed: a truncated row, a bad number, or a stray extra field.
                    match rng.below(3) {
                        0 => writeln!(out, "w{day_tag}-{serial},u{user:07}")?,
                        1 => writeln!(out, "w{day_tag}-{serial},u{user:07},{ts},{event},12,5O,{country},{device}")?,
                        _ => writeln!(
                            out,
                            "w{day_tag}-{serial},u{user:07},{ts},{event},{amount},{country},{device},EXTRA"
                        )?,
                    }
                    continue;
                }
                writeln!(out, "w{day_tag}-{serial},u{user:07},{ts},{event},{amount},{country},{device}")?;
            }
            out.into_inner().map_err(|e| e.into_error())?.finish()?;
            files += 1;
        }
        let path = dir.join("app.ndjson.gz");
        let mut out = std::io::BufWriter::with_capacity(
            1 << 16,
            flate2::write::GzEncoder::new(std::fs::File::create(&path)?, flate2::Compression::fast()),
        );
        for i in 0..app_events {
            let ts = clock(rng.below(86_400), 'T');
            let user = rng.below(g.users);
            let event = pick_event(&mut rng);
            let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
            let os = OSES[rng.below(2) as usize];
            if rng.unit() < g.bad_fraction {
                writeln!(out, "{{\"id\": \"a{day_tag}-{i}\", \"user\": {{\"id\": ")?;
                continue;
            }
            let amount = if event == "purchase" { format!("{:.2}", 5.0 + rng.unit() * 195.0) } else { "null".into() };
            let context = format!(
                "{{\\\"app_version\\\": \\\"2.{}.{}\\\", \\\"os\\\": \\\"{os}\\\"}}",
                rng.below(5),
                rng.below(10)
            );
            writeln!(
                out,
                "{{\"id\": \"a{day_tag}-{i}\", \"user\": {{\"id\": \"u{user:07}\", \"country\": \"{country}\"}}, \"event\": \"{event}\", \"ts\": \"{ts}\", \"amount\": {amount}, \"tags\": [\"app\"], \"context\": \"{context}\"}}",
            )?;
        }
        out.into_inner().map_err(|e| e.into_error())?.finish()?;
        files += 1;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Read;

    use super::{Generate, generate};

    fn users_in(root: &std::path::Path) -> BTreeSet<String> {
        let mut users = BTreeSet::new();
        for entry in std::fs::read_dir(root.join("raw").join("2024-01-01")).into_iter().flatten().flatten() {
            let mut text = String::new();
            let file = std::fs::File::open(entry.path()).map(flate2::read::GzDecoder::new);
            file.and_then(|mut f| f.read_to_string(&mut text)).unwrap_or_else(|e| panic!("{e}"));
            for line in text.lines() {
                // CSV: the second field; NDJSON: the nested user id.
                let user = match line.split_once("\"user\": {\"id\": \"") {
                    Some((_, rest)) => rest.split('"').next(),
                    None => line.split(',').nth(1),
                };
                users.extend(user.map(str::to_owned));
            }
        }
        users
    }

    #[test]
    fn events_spread_over_the_requested_users_and_repeat_per_seed() {
        let (a, b) = (
            tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        );
        let g = Generate { days: 1, events_per_day: 5_000, users: 40, bad_fraction: 0.0, ..Generate::default() };
        for root in [a.path(), b.path()] {
            generate(root, &g).unwrap_or_else(|e| panic!("{e}"));
        }
        let users = users_in(a.path());
        assert_eq!(users.len(), 40, "5,000 events over 40 users reach every user: {users:?}");
        assert!(users.iter().all(|u| u.len() == 8 && u.starts_with('u') && u[1..] < *"0000040"));
        assert_eq!(users, users_in(b.path()));
        let wide = Generate { users: 1_000_000, ..g };
        generate(b.path(), &wide).unwrap_or_else(|e| panic!("{e}"));
        assert!(users_in(b.path()).len() > 4_900, "5,000 events over a million users rarely repeat one");
    }
}
