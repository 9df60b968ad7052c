//! `sessionize`: numbers each user's web sessions, a new one after a gap of more than
//! `gap_minutes` between two of their events. A table operation, because a session spans rows:
//! the frame is sorted by user and time, and one pass in Rust numbers the sessions.

use runner::Params;
use runner::polars::prelude::*;

/// Bump it when the sessions it gives change.
pub const VERSION: &str = "1";

/// Adds `session` (1, 2, … per user, in time order) to `frame`, sorted by `by` and `ts`.
pub fn sessionize(frame: LazyFrame, params: &Params) -> PolarsResult<LazyFrame> {
    let by = params.text("by").unwrap_or_default().to_string();
    let ts = params.text("ts").unwrap_or_default().to_string();
    let gap = params.float("gap_minutes").unwrap_or_default();
    let gap_micros = (gap * 60.0 * 1e6) as i64;
    let number = move |columns: &mut [Column]| -> PolarsResult<Column> {
        let users = columns[0].str()?.clone();
        let times = columns[1].cast(&DataType::Datetime(TimeUnit::Microseconds, None))?.cast(&DataType::Int64)?;
        let times = times.i64()?;
        let (mut session, mut last_user, mut last_at) = (0i64, None, None);
        let mut numbers = Vec::with_capacity(users.len());
        for (user, at) in users.iter().zip(times.iter()) {
            if session == 0 || user != last_user {
                (session, last_user, last_at) = (1, user, None);
            } else if let (Some(now), Some(before)) = (at, last_at)
                && now - before > gap_micros
            {
                session += 1;
            }
            last_at = at.or(last_at);
            numbers.push(session);
        }
        let numbers = Int64Chunked::from_vec("session".into(), numbers);
        Ok(numbers.into_column())
    };
    let sorted = frame.sort([by.as_str(), ts.as_str()], SortMultipleOptions::default());
    Ok(sorted.with_column(
        apply_multiple(
            number,
            [col(by.as_str()), col(ts.as_str())],
            |_, _| Ok(Field::new("session".into(), DataType::Int64)),
            false,
        )
        .alias("session"),
    ))
}
