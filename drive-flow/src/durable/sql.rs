//! The SQL of the durable backend, with the schema name (checked and quoted) put in once,
//! when the store is made. Every value is a bound parameter.

use super::store::quote;

/// The statements of one store.
pub(crate) struct Sql {
    pub(crate) work_channel: String,
    pub(crate) done_channel: String,
    pub(crate) claim: String,
    pub(crate) register_catalog: String,
    pub(crate) unknown_ready: String,
    pub(crate) renew: String,
    pub(crate) release: String,
    pub(crate) retry: String,
    pub(crate) park: String,
    pub(crate) task_done: String,
    pub(crate) release_locked: String,
    pub(crate) load_state: String,
    pub(crate) write_state: String,
    pub(crate) write_optimistic: String,
    pub(crate) write_leaves: String,
    pub(crate) lock_run: String,
    pub(crate) history: String,
    pub(crate) end_run: String,
    pub(crate) delete_run_tasks: String,
    pub(crate) sweep_deadlines: String,
    pub(crate) insert_run: String,
    pub(crate) insert_task: String,
    pub(crate) run_status: String,
    pub(crate) run_history: String,
    pub(crate) insert_inbox: String,
    pub(crate) wake_waiting: String,
    pub(crate) promote_queued: String,
    pub(crate) take_inbox: String,
    pub(crate) pending_inbox: String,
    pub(crate) upsert_event: String,
    pub(crate) all_events: String,
    pub(crate) run_counters: String,
}

impl Sql {
    pub(crate) fn new(schema: &str) -> Self {
        let s = quote(schema);
        // The history row of a completion's released task (`done`): its outcome `$4`, value
        // `$5`, worker `$6`, start `$7`. Both completions, optimistic and locked, write it.
        let recorded = "recorded AS (
                    INSERT INTO {s}.history
                        (run_id, task_id, event, input, outcome, value, error, worker, attempt,
                         started_at)
                    SELECT run_id, task_id, event, input, $4, $5, NULL, $6, attempt, $7
                    FROM done)";
        let t = |text: &str| text.replace("{recorded}", recorded).replace("{s}", &s);
        Sql {
            work_channel: format!("{schema}.work"),
            done_channel: format!("{schema}.done"),
            // Expired leases first, then ready tasks in order; every test inside the CTEs
            // (a filter after the LIMIT would waste slots); SKIP LOCKED so that claimers
            // never wait for each other; the attempt is the fencing token.
            // Expired leases only when `$5` (once per poll interval: an index of leases
            // holds an entry for every lease ever taken until vacuum, all of them in the
            // past, so that scan is the claim's costly part, and a crash is rare).
            // The worker's events are a catalog of rows (`register_catalog`), so the claim
            // binds one short key, never the list of every event id it knows: a list bound as
            // an array is parsed on every claim and, in a custom plan, estimated element by
            // element (20 to 40 ms of planning per claim with 20 000 events). The catalog is
            // asked per candidate row, by its primary key, as a scalar subquery: an `EXISTS`
            // the planner may turn into a join, and the plan made once for any catalog (this
            // pool plans once) read a whole catalog of 20 000 ids per candidate (30 ms).
            claim: t("WITH expired AS (
                    SELECT t.id FROM {s}.tasks t
                    WHERE $5 AND t.state = 'running' AND t.lease_until < now()
                      AND (SELECT true FROM {s}.catalog c
                           WHERE c.catalog = $1 AND c.event = t.event)
                    ORDER BY t.lease_until LIMIT $2 FOR UPDATE SKIP LOCKED),
                ready AS (
                    SELECT t.id FROM {s}.tasks t
                    WHERE t.state = 'ready' AND t.ready_at <= now()
                      AND (SELECT true FROM {s}.catalog c
                           WHERE c.catalog = $1 AND c.event = t.event)
                    ORDER BY t.ready_at, t.id LIMIT $2 FOR UPDATE SKIP LOCKED),
                picked AS (
                    SELECT id FROM (SELECT id, 0 AS rank FROM expired
                                    UNION ALL SELECT id, 1 FROM ready) both_kinds
                    ORDER BY rank LIMIT $2)
                UPDATE {s}.tasks t
                SET state = 'running', attempt = t.attempt + 1, worker = $3,
                    lease_until = now() + ($4::float8 * interval '1 millisecond')
                FROM picked WHERE t.id = picked.id
                RETURNING t.id, t.run_id, t.task_id, t.event, t.input, t.attempt, t.failures,
                          now() AS started_at, t.traceparent"),
            // A catalog's key is the digest of its sorted event ids: every process of one
            // binary shares one, and registering it again writes nothing.
            register_catalog: t("WITH ids AS (SELECT DISTINCT unnest($1::text[]) AS event),
                    key AS (SELECT md5(string_agg(event, E'\\n' ORDER BY event)) AS catalog
                            FROM ids),
                    added AS (INSERT INTO {s}.catalog (catalog, event)
                              SELECT key.catalog, ids.event FROM key, ids
                              ON CONFLICT DO NOTHING)
                SELECT catalog FROM key"),
            unknown_ready: t("SELECT DISTINCT t.event FROM {s}.tasks t
                WHERE t.state = 'ready' AND t.ready_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM {s}.catalog c
                                  WHERE c.catalog = $1 AND c.event = t.event)
                LIMIT 20"),
            renew: t("UPDATE {s}.tasks SET lease_until = now() + ($3::float8 * interval '1 millisecond')
                WHERE id = $1 AND attempt = $2 AND state = 'running'"),
            release: t("UPDATE {s}.tasks SET state = 'ready', worker = NULL, lease_until = NULL,
                    ready_at = now()
                WHERE id = $1 AND attempt = $2 AND state = 'running'"),
            retry: t("UPDATE {s}.tasks SET state = 'ready', worker = NULL, lease_until = NULL,
                    failures = failures + 1, ready_at = now() + ($3::float8 * interval '1 millisecond')
                WHERE id = $1 AND attempt = $2 AND state = 'running'"),
            park: t("UPDATE {s}.tasks SET state = 'waiting', worker = NULL, lease_until = NULL,
                    waiting_key = $3
                WHERE id = $1 AND attempt = $2 AND state = 'running'"),
            task_done: t("DELETE FROM {s}.tasks
                WHERE id = $1 AND attempt = $2 AND state = 'running'"),
            // A completion's first statement: the run's row locked (a run's completions take
            // turns), the fenced release of the task and its history row, written only when
            // this claim still holds the task and the run is running.
            release_locked: t("WITH run AS (
                    SELECT status, max_steps, max_runs_per_event, max_concurrency, steps,
                        in_flight, open_tasks, next_task_id, deadline < now() AS overdue,
                        traceparent
                    FROM {s}.runs WHERE id = $1 FOR UPDATE),
                done AS (
                    DELETE FROM {s}.tasks
                    WHERE id = $2 AND attempt = $3 AND state = 'running'
                      AND EXISTS (SELECT 1 FROM run WHERE status = 'running')
                    RETURNING run_id, task_id, event, input, attempt),
                {recorded}
                SELECT status, max_steps, max_runs_per_event, max_concurrency, steps, in_flight,
                    open_tasks, next_task_id, overdue, traceparent,
                    (SELECT count(*) FROM done) AS released
                FROM run"),
            // Its second (a statement of its own, so that its snapshot is taken under the
            // run's lock): the state of the events and groups it touches, each row found
            // through its primary key (as `event = ANY($2)` and `IN (unnest ..)`, the
            // generic plan read every row of the run: a completion cost the run's size).
            load_state: t("SELECT 0 AS what, e.event AS name, 0 AS k, e.kind, e.value,
                    e.completions, e.triggered, NULL::boolean[] AS delivered,
                    NULL::boolean AS fired
                FROM unnest($2::text[]) AS wanted(event)
                CROSS JOIN LATERAL (
                    SELECT * FROM {s}.event_state s
                    WHERE s.run_id = $1 AND s.event = wanted.event LIMIT 1) e
                UNION ALL
                SELECT 1, g.listener, g.group_index, NULL, NULL, g.ready, 0, g.delivered,
                    g.fired
                FROM unnest($3::text[], $4::int[]) AS wanted(listener, k)
                CROSS JOIN LATERAL (
                    SELECT * FROM {s}.group_state s
                    WHERE s.run_id = $1 AND s.listener = wanted.listener
                      AND s.group_index = wanted.k LIMIT 1) g
                UNION ALL
                SELECT 2, r.xmin::text, 0, r.status, jsonb_build_object(
                        'max_steps', r.max_steps, 'max_runs_per_event', r.max_runs_per_event,
                        'max_concurrency', r.max_concurrency, 'steps', r.steps,
                        'in_flight', r.in_flight, 'open_tasks', r.open_tasks,
                        'next_task_id', r.next_task_id, 'overdue', r.deadline < now(),
                        'traceparent', r.traceparent),
                    NULL, NULL, NULL, NULL
                FROM {s}.runs r WHERE $5 AND r.id = $1"),
            // The optimistic completion (`complete::write_optimistic`), one statement in its
            // own transaction: the run's row locked first (as every writer of a run's state
            // does: no deadlock with the locked path or a cancellation), and only when the
            // run is running, before its deadline, without a cap, within `max_steps`, not
            // ending with this completion, and still the version the completion read
            // (`$8`, its `xmin`); every other write depends on that row being counted. The
            // fenced release of the task comes next; if the claim was taken over after the
            // read, the statement fails on purpose (a cast of a text that is no number, built
            // from a count so that the planner cannot fold it), so that the run's counters
            // roll back with it. `$28` (a lease, unless NULL): the first event it starts is
            // handed to the same worker, inserted already claimed by it (the claim's round
            // trip saved: a chain's next event runs where the last one ran).
            write_optimistic: t("WITH counted AS (
                    UPDATE {s}.runs SET steps = steps + $9, in_flight = in_flight + $10,
                        open_tasks = open_tasks + $10,
                        next_task_id = $11
                    WHERE id = $1 AND status = 'running' AND NOT coalesce(deadline < now(), false)
                      AND max_concurrency IS NULL AND steps + $9 <= max_steps
                      AND open_tasks + $10 > 0
                      AND xmin = $8::text::xid
                    RETURNING id),
                done AS (
                    DELETE FROM {s}.tasks
                    WHERE id = $2 AND attempt = $3 AND state = 'running'
                      AND EXISTS (SELECT 1 FROM counted)
                    RETURNING run_id, task_id, event, input, attempt),
                {recorded},
                events AS (
                    INSERT INTO {s}.event_state
                        (run_id, event, kind, value, completions, triggered)
                    SELECT $1, unnest($12::text[]), unnest($13::text[]), unnest($14::jsonb[]),
                           unnest($15::int[]), unnest($16::int[])
                    WHERE EXISTS (SELECT 1 FROM counted)
                    ON CONFLICT (run_id, event) DO UPDATE SET kind = EXCLUDED.kind,
                        value = EXCLUDED.value, completions = EXCLUDED.completions,
                        triggered = EXCLUDED.triggered),
                groups AS (
                    INSERT INTO {s}.group_state
                        (run_id, listener, group_index, ready, delivered, fired)
                    SELECT $1, l, g, r, string_to_array(d, ',')::boolean[], f
                    FROM unnest($17::text[], $18::int[], $19::int[], $20::text[], $21::boolean[])
                         AS x(l, g, r, d, f)
                    WHERE EXISTS (SELECT 1 FROM counted)
                    ON CONFLICT (run_id, listener, group_index) DO UPDATE SET
                        ready = EXCLUDED.ready, delivered = EXCLUDED.delivered,
                        fired = EXCLUDED.fired),
                triggered AS (
                    INSERT INTO {s}.tasks
                        (run_id, task_id, event, input, state, cause, traceparent, worker,
                         attempt, lease_until)
                    SELECT $1, x.id, x.event, x.input, CASE WHEN x.handed THEN 'running' ELSE 'ready' END,
                           x.cause, x.parent, CASE WHEN x.handed THEN $6 END,
                           CASE WHEN x.handed THEN 1 ELSE 0 END,
                           CASE WHEN x.handed
                                THEN now() + ($28::float8 * interval '1 millisecond') END
                    FROM (SELECT *, n = 1 AND $28::float8 IS NOT NULL AS handed
                          FROM unnest($22::bigint[], $23::text[], $24::jsonb[], $25::text[],
                                      $26::text[]) WITH ORDINALITY
                               AS u(id, event, input, cause, parent, n)) x
                    WHERE EXISTS (SELECT 1 FROM counted)
                    RETURNING id, state),
                outcome AS (
                    SELECT (SELECT count(*) FROM counted) AS counted,
                           (SELECT count(*) FROM done) AS done)
                SELECT CASE WHEN counted = 0 THEN 0 WHEN done = 1 THEN 1
                            ELSE ('TAKEN_OVER ' || done)::int END AS applied,
                       CASE WHEN counted = 1 AND done = 1 AND $27::text IS NOT NULL
                            THEN pg_notify($27, '') END AS notified,
                       (SELECT id FROM triggered WHERE state = 'running') AS handed,
                       now() AS started_at
                FROM outcome").replace("TAKEN_OVER", super::complete::TAKEN_OVER),
            // The leaves of one run a worker completed together (`leaves::write_batch`): the
            // same checks of the run's row, counted relatively for `$2` completions (the
            // run must not end with them), each task's fenced release (`$3` ids, `$4`
            // attempts) and history row (`$5` outcomes, `$6` values, `$7` starts, worker
            // `$8`), and each event's row (`$9`, latest `$10`/`$11`, `$12` completions more);
            // a claim taken over fails the whole statement on purpose, as above.
            write_leaves: t("WITH counted AS (
                    UPDATE {s}.runs SET in_flight = in_flight - $2, open_tasks = open_tasks - $2
                    WHERE id = $1 AND status = 'running' AND NOT coalesce(deadline < now(), false)
                      AND max_concurrency IS NULL AND open_tasks - $2 > 0
                    RETURNING id),
                leaves AS (
                    SELECT * FROM unnest($3::bigint[], $4::int[], $5::text[], $6::jsonb[],
                                         $7::timestamptz[])
                        AS l(id, attempt, outcome, value, started_at)),
                done AS (
                    DELETE FROM {s}.tasks t USING leaves l
                    WHERE t.id = l.id AND t.attempt = l.attempt AND t.state = 'running'
                      AND EXISTS (SELECT 1 FROM counted)
                    RETURNING t.run_id, t.task_id, t.event, t.input, t.attempt, l.outcome,
                              l.value, l.started_at),
                recorded AS (
                    INSERT INTO {s}.history
                        (run_id, task_id, event, input, outcome, value, error, worker, attempt,
                         started_at)
                    SELECT run_id, task_id, event, input, outcome, value, NULL, $8, attempt,
                           started_at
                    FROM done),
                events AS (
                    INSERT INTO {s}.event_state AS e
                        (run_id, event, kind, value, completions, triggered)
                    SELECT $1, unnest($9::text[]), unnest($10::text[]), unnest($11::jsonb[]),
                           unnest($12::int[]), 0
                    WHERE EXISTS (SELECT 1 FROM counted)
                    ON CONFLICT (run_id, event) DO UPDATE SET kind = EXCLUDED.kind,
                        value = EXCLUDED.value,
                        completions = e.completions + EXCLUDED.completions),
                outcome AS (
                    SELECT (SELECT count(*) FROM counted) AS counted,
                           (SELECT count(*) FROM done) AS done)
                SELECT CASE WHEN counted = 0 THEN 0 WHEN done = $2 THEN 1
                            ELSE ('TAKEN_OVER ' || done)::int END AS applied
                FROM outcome").replace("TAKEN_OVER", super::complete::TAKEN_OVER),
            // Its third: everything it changed, in one statement: the events' state, the
            // groups', the triggered tasks, the run's counters, and the wake-up of idle
            // workers when something became ready.
            write_state: t("WITH events AS (
                    INSERT INTO {s}.event_state
                        (run_id, event, kind, value, completions, triggered)
                    SELECT $1, unnest($2::text[]), unnest($3::text[]), unnest($4::jsonb[]),
                           unnest($5::int[]), unnest($6::int[])
                    ON CONFLICT (run_id, event) DO UPDATE SET kind = EXCLUDED.kind,
                        value = EXCLUDED.value, completions = EXCLUDED.completions,
                        triggered = EXCLUDED.triggered),
                groups AS (
                    INSERT INTO {s}.group_state
                        (run_id, listener, group_index, ready, delivered, fired)
                    SELECT $1, l, g, r, string_to_array(d, ',')::boolean[], f
                    FROM unnest($7::text[], $8::int[], $9::int[], $10::text[], $11::boolean[])
                         AS x(l, g, r, d, f)
                    ON CONFLICT (run_id, listener, group_index) DO UPDATE SET
                        ready = EXCLUDED.ready, delivered = EXCLUDED.delivered,
                        fired = EXCLUDED.fired),
                triggered AS (
                    INSERT INTO {s}.tasks
                        (run_id, task_id, event, input, state, cause, traceparent)
                    SELECT $1, unnest($12::bigint[]), unnest($13::text[]), unnest($14::jsonb[]),
                           unnest($15::text[]), unnest($16::text[]), unnest($22::text[])),
                counted AS (
                    UPDATE {s}.runs SET steps = $17, in_flight = $18, open_tasks = $19,
                        next_task_id = $20
                    WHERE id = $1)
                SELECT pg_notify($21, '') WHERE $21 IS NOT NULL"),
            lock_run: t("SELECT status, max_steps, max_runs_per_event, max_concurrency, steps,
                    in_flight, open_tasks, next_task_id, deadline < now() AS overdue, traceparent
                FROM {s}.runs WHERE id = $1 FOR UPDATE"),
            history: t("INSERT INTO {s}.history
                    (run_id, task_id, event, input, outcome, value, error, worker, attempt,
                     started_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
            end_run: t("UPDATE {s}.runs SET status = $2, error = $3, ended_at = now(),
                    in_flight = 0, open_tasks = 0
                WHERE id = $1 AND status = 'running'"),
            delete_run_tasks: t("DELETE FROM {s}.tasks WHERE run_id = $1"),
            sweep_deadlines: t("SELECT id FROM {s}.runs
                WHERE status = 'running' AND deadline IS NOT NULL AND deadline < now()
                LIMIT 100 FOR UPDATE SKIP LOCKED"),
            insert_run: t("INSERT INTO {s}.runs
                    (start_event, input, deadline, timeout_ms, max_steps, max_runs_per_event,
                     max_concurrency, steps, in_flight, open_tasks, next_task_id, traceparent)
                VALUES ($1, $2, now() + ($3::float8 * interval '1 millisecond'), $3, $4, $5, $6,
                        1, 1, 1, 1, $7)
                RETURNING id"),
            insert_task: t("INSERT INTO {s}.tasks
                    (run_id, task_id, event, input, state, cause, traceparent)
                SELECT $1, unnest($2::bigint[]), unnest($3::text[]), unnest($4::jsonb[]),
                       unnest($5::text[]), unnest($6::text[]), unnest($7::text[])"),
            run_status: t("SELECT status, error, steps, open_tasks, start_event, created_at,
                    ended_at, traceparent
                FROM {s}.runs WHERE id = $1"),
            run_history: t("SELECT task_id, event, input, outcome, value, error, worker,
                    attempt, started_at, ended_at
                FROM {s}.history WHERE run_id = $1 ORDER BY id"),
            insert_inbox: t("INSERT INTO {s}.inbox (run_id, key, value) VALUES ($1, $2, $3)"),
            wake_waiting: t("UPDATE {s}.tasks SET state = $3, waiting_key = NULL,
                    ready_at = now()
                WHERE id = (SELECT id FROM {s}.tasks
                            WHERE run_id = $1 AND state = 'waiting' AND waiting_key = $2
                            ORDER BY id LIMIT 1)
                RETURNING id"),
            promote_queued: t("UPDATE {s}.tasks SET state = 'ready', ready_at = now()
                WHERE id IN (SELECT id FROM {s}.tasks
                             WHERE run_id = $1 AND state = 'queued'
                             ORDER BY id LIMIT $2)"),
            take_inbox: t("UPDATE {s}.inbox SET consumed_by = $3
                WHERE seq = (SELECT seq FROM {s}.inbox
                             WHERE run_id = $1 AND key = $2
                               AND (consumed_by IS NULL OR consumed_by = $3)
                               AND NOT (seq = ANY($4))
                             ORDER BY seq LIMIT 1)
                RETURNING seq, value"),
            pending_inbox: t("SELECT EXISTS (SELECT 1 FROM {s}.inbox
                WHERE run_id = $1 AND key = $2 AND consumed_by IS NULL)"),
            upsert_event: t("INSERT INTO {s}.event_state
                    (run_id, event, kind, value, completions, triggered)
                SELECT $1, unnest($2::text[]), unnest($3::text[]), unnest($4::jsonb[]),
                       unnest($5::int[]), unnest($6::int[])
                ON CONFLICT (run_id, event) DO UPDATE SET kind = EXCLUDED.kind,
                    value = EXCLUDED.value, completions = EXCLUDED.completions,
                    triggered = EXCLUDED.triggered"),
            all_events: t("SELECT event, kind, value, completions, triggered
                FROM {s}.event_state WHERE run_id = $1"),
            run_counters: t("UPDATE {s}.runs SET steps = $2, in_flight = $3, open_tasks = $4,
                    next_task_id = $5
                WHERE id = $1"),
        }
    }
}
