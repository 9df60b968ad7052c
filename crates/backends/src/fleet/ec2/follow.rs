//! What a step's instances and fleets did since the last look: each instance up, the end of
//! each one gone (read while EC2 still lists it), what young fleets have shown, each fleet's
//! state and activity, and its history's problems (a fleet EC2 ended before showing anything
//! is one). Also the vCPUs of instance types, cached. The provider's looks call these; nothing
//! here decides capacity.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use aws_sdk_ec2::types::{FleetActivityStatus, HistoryRecordEntry};

use super::history::{Problem, Read};
use super::trouble::{self, Trouble};
use super::{Ec2Fleet, StepFleet, instances, usage};
use crate::fleet::{EndReason, Ended, Volume};

/// Unix seconds now, as the bill's instance lives are stamped.
pub(super) fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

impl Ec2Fleet {
    /// The root volume each of these AMIs gives its instances (its root device's mapping).
    pub(super) async fn image_root_volumes(&self, images: BTreeSet<String>) -> BTreeMap<String, Volume> {
        if images.is_empty() {
            return BTreeMap::new();
        }
        let Ok(out) = self.client.describe_images().set_image_ids(Some(images.into_iter().collect())).send().await
        else {
            return BTreeMap::new();
        };
        out.images()
            .iter()
            .filter_map(|img| {
                let root = img.root_device_name()?;
                let ebs = img.block_device_mappings().iter().find(|m| m.device_name() == Some(root))?.ebs()?;
                let gib = u32::try_from(ebs.volume_size()?).ok()?;
                let kind = ebs.volume_type().map(|t| t.as_str().to_string()).unwrap_or_else(|| "gp2".into());
                Some((img.image_id()?.to_string(), Volume { gib, kind }))
            })
            .collect()
    }

    /// The root volumes of the instances up whose volume the ledger lacks (one
    /// `DescribeVolumes`), by volume id: read while the instance is up, since EC2 deletes a
    /// root volume with its instance. A failed read is tried at the next look.
    async fn root_volumes(&self, s: &StepFleet, listed: &[aws_sdk_ec2::types::Instance]) -> BTreeMap<String, Volume> {
        let ids: Vec<String> = listed
            .iter()
            .filter(|i| i.instance_id().is_some_and(|id| s.ledger.lacks_volume(id)))
            .filter_map(usage::root_volume_id)
            .collect();
        if ids.is_empty() {
            return BTreeMap::new();
        }
        match self.client.describe_volumes().set_volume_ids(Some(ids)).send().await {
            Ok(out) => out
                .volumes()
                .iter()
                .filter_map(|v| {
                    let gib = u32::try_from(v.size()?).ok()?;
                    let kind = v.volume_type().map(|t| t.as_str().to_string()).unwrap_or_default();
                    Some((v.volume_id()?.to_string(), Volume { gib, kind }))
                })
                .collect(),
            Err(e) => {
                // Once: a missing ec2:DescribeVolumes would say so at every look.
                static SAID: std::sync::Once = std::sync::Once::new();
                let why = aws_sdk_ec2::error::DisplayErrorContext(&e).to_string();
                SAID.call_once(|| {
                    tracing::warn!("reading the instances' root volumes failed (ec2:DescribeVolumes); the bill leaves out the volumes not read: {why}")
                });
                BTreeMap::new()
            }
        }
    }

    /// vCPUs of an instance type (cached; `DescribeInstanceTypes`).
    pub(super) async fn vcpus(&self, instance_type: &str) -> usize {
        if let Some(v) = self.vcpus_of_type.lock().unwrap_or_else(|p| p.into_inner()).get(instance_type) {
            return *v;
        }
        let found = self
            .client
            .describe_instance_types()
            .instance_types(instance_type.into())
            .send()
            .await
            .ok()
            .and_then(|o| o.instance_types().first().and_then(|t| t.v_cpu_info()).and_then(|v| v.default_v_cpus()))
            .map(|v| v.max(1) as usize);
        match found {
            Some(v) => {
                self.vcpus_of_type.lock().unwrap_or_else(|p| p.into_inner()).insert(instance_type.to_string(), v);
                v
            }
            // Not cached: a throttled answer must not make a 16-vCPU type count as 2 for good.
            None => self.config.vcpus_per_item,
        }
    }

    pub(super) async fn vcpus_of(&self, i: &aws_sdk_ec2::types::Instance) -> usize {
        match i.instance_type() {
            Some(t) => self.vcpus(t.as_str()).await,
            None => self.config.vcpus_per_item,
        }
    }

    /// Records what the step's instances did since the last look: each one up, and the end of
    /// each one gone (read while AWS still lists it). Returns the ones that ended.
    pub(super) async fn follow_instances(
        &self,
        s: &mut StepFleet,
        listed: &[aws_sdk_ec2::types::Instance],
    ) -> Vec<Ended> {
        let now = unix_now();
        let volumes = self.root_volumes(s, listed).await;
        for i in listed {
            let vcpus = self.vcpus_of(i).await;
            let mut u = usage::usage_of(i, vcpus, now);
            u.root_volume = usage::root_volume_id(i).and_then(|v| volumes.get(&v).cloned());
            s.ledger.saw_up(u);
        }
        let up: Vec<&str> = listed.iter().filter_map(|i| i.instance_id()).collect();
        let gone = s.ledger.gone(&up, now);
        let mut ended = Vec::new();
        if gone.is_empty() {
            return ended;
        }
        match instances::by_ids(&self.client, &gone).await {
            Ok(found) => {
                let listed: BTreeSet<&str> = found.iter().filter_map(|i| i.instance_id()).collect();
                let forgotten: Vec<String> = gone.iter().filter(|id| !listed.contains(id.as_str())).cloned().collect();
                s.ledger.forgotten(&forgotten);
                for i in found.iter().filter(|i| !usage::is_up(i)) {
                    let vcpus = self.vcpus_of(i).await;
                    s.ledger.saw_end(usage::usage_of(i, vcpus, now));
                    let why = EndReason::of_ec2_code(usage::end_reason(i).as_deref());
                    ended.push(Ended { id: i.instance_id().unwrap_or_default().to_string(), why });
                }
            }
            Err((t, e)) => tracing::debug!(?t, "reading the end of instances {}: {e}", gone.join(", ")),
        }
        ended
    }

    /// What the step's fleets show and say: each young fleet is asked what it has shown, each
    /// fleet's state and activity is read, and due histories are read. Returns new problems,
    /// and the vCPUs of instances young fleets show that the tagged listing does not have yet
    /// (EC2's listings are eventually consistent: counting them as up keeps a fleet that has
    /// just filled from being asked for twice).
    pub(super) async fn follow_fleets(
        &self,
        s: &mut StepFleet,
        listed: &BTreeSet<&str>,
        now: Instant,
    ) -> (Vec<Problem>, usize) {
        let mut problems = Vec::new();
        let mut unlisted_vcpus = 0;
        for id in s.capacity.young(now) {
            if let Ok(out) = self.client.describe_fleet_instances().fleet_id(&id).send().await {
                let mut shown = 0;
                for i in out.active_instances() {
                    let vcpus = match i.instance_type() {
                        Some(t) => self.vcpus(t).await,
                        None => self.config.vcpus_per_item,
                    };
                    shown += vcpus;
                    if i.instance_id().is_some_and(|i| !listed.contains(i)) {
                        unlisted_vcpus += vcpus;
                    }
                }
                s.capacity.shown(&id, shown);
            }
        }
        let ids: Vec<String> = s.capacity.fleets.iter().map(|f| f.id.clone()).collect();
        let history_works = self.history.load(Ordering::Relaxed);
        let mut over = Vec::new();
        if !ids.is_empty()
            && let Ok(out) = self.client.describe_fleets().set_fleet_ids(Some(ids)).send().await
        {
            for f in out.fleets() {
                let id = f.fleet_id().unwrap_or_default().to_string();
                let state = f.fleet_state().map(|s| s.as_str()).unwrap_or_default();
                if state.starts_with("deleted") || state == "failed" || state == "expired" {
                    // Its history is read a while longer: why it ended is written there late.
                    over.push(id.clone());
                    if s.capacity.showed_nothing(&id) {
                        problems.push(ended_empty(&id, state));
                    }
                }
                // `Errors` is filled for instant fleets only; kept for an endpoint that fills it.
                for e in f.errors() {
                    let code = e.error_code().unwrap_or("error");
                    problems.push(Problem {
                        fleet: id.clone(),
                        trouble: trouble::of_code(code),
                        text: format!("{code}: {}", e.error_message().unwrap_or_default()),
                    });
                }
                // Where the history can't be read, an activity status of `error` is all there is.
                if !history_works
                    && f.activity_status() == Some(&FleetActivityStatus::Error)
                    && s.status_reported.insert(id.clone())
                {
                    problems.push(Problem {
                        fleet: id.clone(),
                        trouble: Trouble::Other,
                        text: "its activity status is error (its history, which says why, can't be read here)".into(),
                    });
                }
            }
        }
        if history_works {
            for (id, since) in s.history.due(now) {
                let read = self.read_history(&id, since).await;
                let (found, off) = s.history.record(&id, read, now);
                if off {
                    tracing::debug!("DescribeFleetHistory is not implemented by this endpoint: not reading it again");
                    self.history.store(false, Ordering::Relaxed);
                    break;
                }
                problems.extend(found);
            }
        }
        for id in over {
            s.history.over(&id, now);
        }
        (problems, unlisted_vcpus)
    }

    async fn read_history(&self, fleet: &str, since: SystemTime) -> Read {
        let mut records: Vec<HistoryRecordEntry> = Vec::new();
        let mut token: Option<String> = None;
        let mut until = None;
        loop {
            let sent = self
                .client
                .describe_fleet_history()
                .fleet_id(fleet)
                .start_time(aws_sdk_ec2::primitives::DateTime::from(since))
                .set_next_token(token.take())
                .send()
                .await;
            match sent {
                Ok(out) => {
                    records.extend(out.history_records().iter().cloned());
                    until = out.last_evaluated_time().and_then(|t| SystemTime::try_from(*t).ok()).or(until);
                    match out.next_token() {
                        Some(t) if !t.is_empty() => token = Some(t.to_string()),
                        _ => break,
                    }
                }
                Err(e) => return Read::Failed(trouble::of_error(&e)),
            }
        }
        Read::Records { records, until }
    }
}

/// A fleet EC2 ended before any instance of it showed: a problem, so the next fleet backs off
/// and the user reads why (EC2 deletes a request over the account's fleet limits at once).
fn ended_empty(fleet: &str, state: &str) -> Problem {
    Problem {
        fleet: fleet.to_string(),
        trouble: Trouble::Other,
        text: format!(
            "EC2 ended the fleet ({state}) before any instance of it showed (a request over the account's EC2 Fleet \
             limits is deleted at once; the reason, when EC2 gives one, follows from its history within a minute)"
        ),
    }
}
