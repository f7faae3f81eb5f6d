/* us_replay.h — a worker's replay mode: one saved block, outside real time.
 *
 *   my-worker --replay FILE [--out RAW]
 *
 * FILE is a repro file the host saved when it bypassed a poison block
 * (supervisor/repro.go gives the format): the chain, its geometry, the input
 * block and the committed state the block started from. The worker loads
 * them and runs the chain's process over the block in this process: no
 * sandbox, no real-time priority, no host, so that
 *
 *   gdb --args ./my-worker --replay FILE
 *
 * stops where the kernel crashed. When the chain finishes it prints a digest
 * of the output (and writes the output samples, float32 little-endian, to
 * RAW) and exits 0; a bad file or a chain this worker cannot run exits 2. */
#ifndef US_REPLAY_H
#define US_REPLAY_H

/* Runs the replay mode; argv[1] is "--replay". Returns the exit status. */
int us_replay_main(int argc, char **argv);

#endif
