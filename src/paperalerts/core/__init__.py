"""The pure core: values in, values out; no sockets, database, environment or clock."""
