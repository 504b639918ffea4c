-- Servers cache verified access keys in memory (one database round trip
-- less per request) and drop an entry when this tells them the key changed
-- or went away, so a deleted key stops working on every replica at once.
-- Cascading deletes (an account's removal) fire it too.
create function access_key_changed() returns trigger language plpgsql as $$
begin
    perform pg_notify('millrace_access_key', old.access_key_id);
    return null;
end
$$;
create trigger access_key_changed after update or delete on access_key
    for each row execute function access_key_changed();
