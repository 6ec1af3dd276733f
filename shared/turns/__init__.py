"""A turn's life, in one package: the answer to "where can a turn end, and what then?".

- `state`: the transitions of a turn row (claim, progress, re-queue, the endings), each a
  conditional UPDATE with its allowed starting states inside; `TurnSuperseded` when another
  attempt owns the turn now.
- `ending`: `end_turn`, the only code that ends a turn and publishes its terminal chunk, and
  the catalogue of endings (who ends a turn how, what is stored and what the client is told).
- `stream`: Redis key names, the chunk publisher and the replay-log reader.
- `watchdog`: re-runs or ends turns whose worker vanished, and queued turns nobody took;
  `broker_recovery`: re-dispatches queued turns when Redis lost the broker's messages.
"""
