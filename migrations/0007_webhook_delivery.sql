-- Deliveries that started an execution, by GitHub's X-GitHub-Delivery id,
-- so a redelivery (GitHub's "Redeliver" button, or a retry after a timeout)
-- starts nothing a second time. Recorded in the transaction that starts the
-- execution; a delivery that started nothing is not recorded, so it may be
-- redelivered once the webhook or pipeline is fixed.
--
-- Keyed by the webhook's url_id, which is unique across accounts and never
-- reused: a re-created webhook starts with no history. Rows older than a
-- week are pruned by the endpoint (GitHub redelivers for three days).
create table webhook_delivery (
    url_id       text not null references webhook (url_id) on delete cascade,
    delivery_id  text not null,
    execution_id uuid not null,
    received_at  timestamptz not null default now(),
    primary key (url_id, delivery_id)
);

create index webhook_delivery_received_at on webhook_delivery (received_at);
