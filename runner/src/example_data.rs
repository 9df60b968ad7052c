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
        for f in 0..g.csv_files_per_day.max(1) {
            let path = dir.join(format!("web-{f:03}.csv.gz"));
            let mut out = flate2::write::GzEncoder::new(
                std::io::BufWriter::new(std::fs::File::create(&path)?),
                flate2::Compression::fast(),
            );
            for _ in 0..per_file.min(web_events.saturating_sub(u64::from(f) * per_file)) {
                serial += 1;
                let secs = rng.below(86_400);
                let ts = day.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::seconds(secs as i64);
                let user = rng.below(g.users);
                let event = pick_event(&mut rng);
                let amount =
                    if event == "purchase" { format!("{:.2}", 5.0 + rng.unit() * 195.0) } else { String::new() };
                let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
                let device = DEVICES[rng.below(DEVICES.len() as u64) as usize];
                if rng.unit() < g.bad_fraction {
                    // Malformed: a truncated row, a bad number, or a stray extra field.
                    match rng.below(3) {
                        0 => writeln!(out, "w{}-{serial},u{user:07}", day.format("%Y%m%d"))?,
                        1 => writeln!(
                            out,
                            "w{}-{serial},u{user:07},{},{event},12,5O,{country},{device}",
                            day.format("%Y%m%d"),
                            ts.format("%Y-%m-%d %H:%M:%S")
                        )?,
                        _ => writeln!(
                            out,
                            "w{}-{serial},u{user:07},{},{event},{amount},{country},{device},EXTRA",
                            day.format("%Y%m%d"),
                            ts.format("%Y-%m-%d %H:%M:%S")
                        )?,
                    }
                    continue;
                }
                writeln!(
                    out,
                    "w{}-{serial},u{user:07},{},{event},{amount},{country},{device}",
                    day.format("%Y%m%d"),
                    ts.format("%Y-%m-%d %H:%M:%S")
                )?;
            }
            out.finish()?.flush()?;
            files += 1;
        }
        let path = dir.join("app.ndjson.gz");
        let mut out = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(std::fs::File::create(&path)?),
            flate2::Compression::fast(),
        );
        for i in 0..app_events {
            let secs = rng.below(86_400);
            let ts = day.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::seconds(secs as i64);
            let user = rng.below(g.users);
            let event = pick_event(&mut rng);
            let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
            let os = OSES[rng.below(2) as usize];
            if rng.unit() < g.bad_fraction {
                writeln!(out, "{{\"id\": \"a{}-{i}\", \"user\": {{\"id\": ", day.format("%Y%m%d"))?;
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
                "{{\"id\": \"a{}-{i}\", \"user\": {{\"id\": \"u{user:07}\", \"country\": \"{country}\"}}, \"event\": \"{event}\", \"ts\": \"{}\", \"amount\": {amount}, \"tags\": [\"app\"], \"context\": \"{context}\"}}",
                day.format("%Y%m%d"),
                ts.format("%Y-%m-%dT%H:%M:%S"),
            )?;
        }
        out.finish()?.flush()?;
        files += 1;
    }
    Ok(files)
}
