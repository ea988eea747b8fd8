"""Model and optimizer state in and out of a run: `loading` reads the student once and broadcasts it into
FSDP shards; `checkpoint` writes and reads checkpoints with torch.distributed.checkpoint."""
