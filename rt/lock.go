package rt

/*
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>

// The calling thread's stack as the C library allocated it. A Go thread
// started with cgo runs its g0 (scheduler, signal and cgo) code here.
static int us_rt_thread_stack(uintptr_t *lo, uintptr_t *hi) {
	pthread_attr_t a;
	void *addr;
	size_t size;
	if (pthread_getattr_np(pthread_self(), &a) != 0) return -1;
	int err = pthread_attr_getstack(&a, &addr, &size);
	pthread_attr_destroy(&a);
	if (err != 0) return -1;
	*lo = (uintptr_t)addr;
	*hi = (uintptr_t)addr + size;
	return 0;
}
*/
import "C"

import (
	"bufio"
	"cmp"
	"debug/elf"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// What the host locks, and why: docs/design.md §7. In short: the code and
// static data every thread executes (the program and its shared libraries),
// the Go heap's mapping (the monitor's goroutine stack and state live
// there), the top StackLockBytes of each real-time thread's own stack, and
// the shared region and the clock's memory, which lock themselves. Nothing
// else: not the gigabytes Go reserves and never touches, nor the stacks and
// malloc arenas of ordinary threads.

// StackLockBytes is how much of the top of a real-time thread's C stack is
// locked: the thread descriptor and TLS glibc keeps there and the frames the
// thread's loop uses. Measured during a demo (pagemap of every 8 MiB thread
// stack, unlocked): no thread touched more than the top 16 KiB; four times
// that leaves room for a signal frame and a deeper path than the demo took.
const StackLockBytes = 64 << 10

// RTThreads is how many threads the host runs at real-time priority and so
// how many stacks it locks: the monitor and the audio clock.
const RTThreads = 2

// HeapSlack is what the Go heap may grow by between the probe (before the
// host allocates its buffers) and the locking, for the probe's estimate.
// The heap maps memory in 4 MiB steps.
const HeapSlack = 16 << 20

var locking struct {
	on     atomic.Bool  // LockMemory succeeded: real-time threads lock their stacks
	image  atomic.Int64 // bytes of program and library mappings locked
	heap   atomic.Int64 // bytes of Go heap mappings locked (on fault)
	stacks atomic.Int64 // bytes of real-time thread stacks locked
	mu     sync.Mutex   // one parse of /proc/self/maps and its mlock at a time

	heapRanges []mapping // Go heap mappings locked, under mu
	stackErr   atomic.Pointer[error]
}

// StackLockErr is why SetThreadFIFO could not lock a real-time thread's
// stacks, the last time it could not; nil if it always could.
func StackLockErr() error {
	if e := locking.stackErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Locked is what LockMemory and the real-time threads since have locked, in
// bytes; the shared region and the clock's memory are not included (they
// lock themselves: shm.Region.Size, audioclock.MemBytes). Free heap pages
// that Go has since returned to the system are no longer locked (see
// LockMemory), so VmLck can be below it, never above.
type Locked struct {
	Image, Heap, Stacks uint64
}

// Total is the sum.
func (l Locked) Total() uint64 { return l.Image + l.Heap + l.Stacks }

// LockedNow reports what this package has locked so far.
func LockedNow() Locked {
	return Locked{uint64(locking.image.Load()), uint64(locking.heap.Load()), uint64(locking.stacks.Load())}
}

// LockMemory locks what the host's real-time threads touch, so a page fault
// can never stall them: the program's and its libraries' code and static
// data (code populated now: these pages come from files and are evicted
// under memory pressure even without swap) and the Go heap's mappings as they
// stand (on fault: only the pages in use count towards RSS). Pages in use
// stay locked; a free page Go's scavenger returns to the system loses its
// lock (madvise refuses locked pages, so Go maps fresh memory over them),
// and faults in unlocked if reused. From then on every thread that
// SetThreadFIFO raises also locks its stacks (LockThreadStacks).
//
// It needs RLIMIT_MEMLOCK of MemLockNeed, or CAP_IPC_LOCK; on failure it
// returns a *PrivilegeError and leaves nothing it locked locked.
func LockMemory() error {
	locking.mu.Lock()
	defer locking.mu.Unlock()
	maps, err := readMaps()
	if err != nil {
		return fmt.Errorf("rt: lock memory: %w", err)
	}
	var image uint64
	for _, m := range lockedImage(maps) {
		if err := mlockRange(m.lo, m.hi, 0); err != nil {
			unix.Munlockall()
			return lockError("mlock of the program's code and data", err)
		}
		image += m.hi - m.lo
	}
	locking.heapRanges = nil
	locking.heap.Store(0) // a second call recounts what it locks
	for _, m := range heapMappings(maps) {
		if err := lockHeap(m); err != nil {
			unix.Munlockall()
			locking.heapRanges = nil
			return err
		}
	}
	locking.image.Store(int64(image))
	locking.on.Store(true)
	return nil
}

// UnlockMemory undoes LockMemory, and every other lock in the process (the
// region's and the clock's too): call it when nothing real-time runs any more.
func UnlockMemory() error {
	locking.mu.Lock()
	defer locking.mu.Unlock()
	locking.on.Store(false)
	locking.heapRanges = nil
	locking.stackErr.Store(nil)
	locking.image.Store(0)
	locking.heap.Store(0)
	locking.stacks.Store(0)
	if err := unix.Munlockall(); err != nil {
		return fmt.Errorf("rt: munlockall: %w", err)
	}
	return nil
}

// LockThreadStacks locks the calling thread's stacks: the top StackLockBytes
// of its C stack (a Go thread's g0: where the scheduler runs when the thread
// blocks and wakes) and the Go heap mapping its goroutine stack lives in (a
// goroutine stack moves when it grows or shrinks, but only within the heap).
// The caller must hold runtime.LockOSThread. SetThreadFIFO calls it once
// LockMemory has succeeded; a C thread can lock its own stack the same way
// (audioclock does).
func LockThreadStacks() error {
	var lo, hi C.uintptr_t
	if C.us_rt_thread_stack(&lo, &hi) != 0 {
		return fmt.Errorf("rt: cannot find this thread's stack")
	}
	top := uint64(hi) &^ (pageSize - 1)
	bottom := max(uint64(lo), top-StackLockBytes)
	if err := mlockRange(bottom, top, 0); err != nil {
		return lockError("mlock of a real-time thread's stack", err)
	}
	locking.stacks.Add(int64(top - bottom))

	// The goroutine's stack, in the Go heap (any local's address is in
	// it), and the heap as it stands now: the thread's state was allocated
	// since LockMemory, maybe in mappings the heap has added since.
	var here byte
	at := uint64(uintptr(unsafe.Pointer(&here)))
	locking.mu.Lock()
	defer locking.mu.Unlock()
	maps, err := readMaps()
	if err != nil {
		return fmt.Errorf("rt: lock the Go heap: %w", err)
	}
	heap := heapMappings(maps)
	if m, ok := mappingAt(maps, at); ok && m.path == "" && strings.HasPrefix(m.perms, "rw") {
		heap = append(heap, m)
	}
	for _, m := range heap {
		if err := lockHeap(m); err != nil {
			return err
		}
	}
	return nil
}

// lockHeap locks m, a Go heap mapping, on fault, unless it is locked
// already, and counts it. Callers hold locking.mu.
func lockHeap(m mapping) error {
	var covered uint64
	for _, r := range locking.heapRanges {
		if lo, hi := max(r.lo, m.lo), min(r.hi, m.hi); lo < hi {
			covered += hi - lo
		}
	}
	if covered == m.hi-m.lo {
		return nil
	}
	if err := mlockRange(m.lo, m.hi, unix.MLOCK_ONFAULT); err != nil {
		return lockError("mlock of the Go heap", err)
	}
	locking.heap.Add(int64(m.hi - m.lo - covered))
	// Keep the ranges disjoint and merged, so that what they cover is the
	// sum of their lengths.
	rs := append(locking.heapRanges, m)
	slices.SortFunc(rs, func(a, b mapping) int { return cmp.Compare(a.lo, b.lo) })
	merged := rs[:1]
	for _, r := range rs[1:] {
		last := &merged[len(merged)-1]
		if r.lo <= last.hi {
			last.hi = max(last.hi, r.hi)
			continue
		}
		merged = append(merged, r)
	}
	locking.heapRanges = merged
	return nil
}

func mappingAt(maps []mapping, at uint64) (mapping, bool) {
	for _, m := range maps {
		if m.lo <= at && at < m.hi {
			return m, true
		}
	}
	return mapping{}, false
}

// MemLockNeed is the RLIMIT_MEMLOCK the host needs without CAP_IPC_LOCK, in
// bytes, when its real-time threads also lock shared bytes of their own (the
// region and the clock's memory: shm.Bytes, audioclock.MemBytes): this
// process's program and library mappings and Go heap as they stand, HeapSlack
// for the heap to grow before the locking, and RTThreads stacks.
func MemLockNeed(shared uint64) uint64 {
	maps, err := readMaps()
	if err != nil {
		return shared + HeapSlack + RTThreads*StackLockBytes
	}
	var n uint64
	for _, m := range lockedImage(maps) {
		n += m.hi - m.lo
	}
	for _, m := range heapMappings(maps) {
		n += m.hi - m.lo
	}
	return n + HeapSlack + RTThreads*StackLockBytes + shared
}

// DefaultShared is the shared memory a default host (the demo's two
// 64-frame mono lanes) locks: what Probe assumes when not told.
var DefaultShared uint64 = 20 << 20

const pageSize = 4096

func mlockRange(lo, hi uint64, flags int) error {
	if hi <= lo {
		return nil
	}
	_, _, e := unix.Syscall(unix.SYS_MLOCK2, uintptr(lo), uintptr(hi-lo), uintptr(flags))
	if e != 0 {
		return e
	}
	return nil
}

func lockError(op string, err error) error {
	// EPERM: RLIMIT_MEMLOCK is 0. ENOMEM: it is below what we lock. Either
	// way, more privilege fixes it.
	if err == unix.EPERM || (err == unix.ENOMEM && !honouredCap(unix.CAP_IPC_LOCK)) {
		need := MemLockNeed(DefaultShared)
		return &PrivilegeError{
			Op:   op,
			Need: fmt.Sprintf("CAP_IPC_LOCK or RLIMIT_MEMLOCK >= %s (RLIMIT_MEMLOCK is %s)", mib(need), limitString(rlimit(unix.RLIMIT_MEMLOCK), mib)),
			Fix:  FixMemLock(need),
			Err:  err,
		}
	}
	return fmt.Errorf("rt: %s: %w", op, err)
}

type mapping struct {
	lo, hi uint64
	perms  string
	offset uint64 // into the file, for file mappings
	path   string
}

func readMaps() ([]mapping, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// lo-hi perms offset dev inode [path]
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		lohi := strings.SplitN(fs[0], "-", 2)
		if len(lohi) != 2 {
			continue
		}
		lo, err1 := strconv.ParseUint(lohi[0], 16, 64)
		hi, err2 := strconv.ParseUint(lohi[1], 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		off, _ := strconv.ParseUint(fs[2], 16, 64)
		m := mapping{lo: lo, hi: hi, perms: fs[1], offset: off}
		if len(fs) >= 6 {
			m.path = strings.Join(fs[5:], " ")
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// lockedImage is what LockMemory locks of the image: code and read-only
// data whole (read in now: a real-time thread's first run of a path, a
// failover's, must not wait for the disk), and of writable data and bss the
// pages this process has touched (the runtime's
// globals among them): a library's bss can hold tens of MiB nobody touches
// (crypto's DRBG buffer, linked in through gonum/plot's PDF writer, is 32
// MiB), and the limit would be charged for all of it.
func lockedImage(maps []mapping) []mapping {
	var out []mapping
	for _, m := range imageMappings(maps) {
		if !strings.Contains(m.perms, "w") {
			out = append(out, m)
			continue
		}
		out = append(out, residentRuns(m)...)
	}
	return out
}

// residentRuns splits m into its runs of pages this process has in its page
// tables (/proc/self/pagemap's present bit): what it has touched. mincore
// would not do for the data segment, a file mapping: it reports the page
// cache, where the whole file may sit.
func residentRuns(m mapping) []mapping {
	n := (m.hi - m.lo) / pageSize
	if n == 0 {
		return nil
	}
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return []mapping{m} // cannot tell: lock it all
	}
	defer f.Close()
	buf := make([]byte, 8*n)
	if _, err := f.ReadAt(buf, int64(m.lo/pageSize*8)); err != nil {
		return []mapping{m}
	}
	present := func(i uint64) bool { return buf[8*i+7]&0x80 != 0 } // bit 63, little-endian
	var out []mapping
	for i := uint64(0); i < n; {
		if !present(i) {
			i++
			continue
		}
		j := i
		for j < n && present(j) {
			j++
		}
		r := m
		r.lo, r.hi = m.lo+i*pageSize, m.lo+j*pageSize
		out = append(out, r)
		i = j
	}
	return out
}

// imageMappings are the program's and its shared libraries' mappings: every
// mapping of a file that is mapped executable somewhere (its code, read-only
// data and data segments), and of the anonymous mapping that directly
// follows one, the part its ELF headers say is its bss (the C library's brk
// heap can share that mapping, and is not ours to lock).
func imageMappings(maps []mapping) []mapping {
	objects := map[string]bool{}
	for _, m := range maps {
		if strings.HasPrefix(m.path, "/") && strings.Contains(m.perms, "x") {
			objects[m.path] = true
		}
	}
	var out []mapping
	prev := ""
	var prevEnd uint64
	for _, m := range maps {
		if objects[m.path] {
			out = append(out, m)
			prev, prevEnd = m.path, m.hi
			continue
		}
		if m.path == "" && prev != "" && m.lo == prevEnd && strings.HasPrefix(m.perms, "rw") {
			if end := loadEnd(prev, maps); end > m.lo {
				m.hi = min(m.hi, (end+pageSize-1)&^(pageSize-1))
				out = append(out, m)
			}
		}
		prev = ""
	}
	return out
}

// loadEnd is where the object at path, as mapped, ends in memory: its last
// loadable segment's end (bss included), 0 if its headers cannot be read.
func loadEnd(path string, maps []mapping) uint64 {
	f, err := elf.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	first, end := ^uint64(0), uint64(0)
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			first = min(first, p.Vaddr&^(pageSize-1))
			end = max(end, p.Vaddr+p.Memsz)
		}
	}
	if end == 0 {
		return 0
	}
	// The load bias: where the mapping of the file's start lies, against
	// the address the headers give it (0 for a position-dependent program).
	for _, m := range maps {
		if m.path == path && m.offset == 0 {
			return end - first + m.lo
		}
	}
	return 0
}

// heapSink keeps heapMappings' probe object on the heap.
var heapSink *[64]byte

// heapMappings are the Go heap arena's read-write mappings: the one holding
// a freshly allocated object and its anonymous read-write neighbours, as the
// heap grows in steps mapped right after the last (each a mapping of its own
// until locked alike).
func heapMappings(maps []mapping) []mapping {
	heapSink = new([64]byte)
	at := uint64(uintptr(unsafe.Pointer(heapSink)))
	heapLike := func(m mapping) bool { return m.path == "" && strings.HasPrefix(m.perms, "rw") }
	for i, m := range maps {
		if m.lo <= at && at < m.hi {
			if !heapLike(m) {
				return nil
			}
			lo, hi := i, i+1
			for lo > 0 && maps[lo-1].hi == maps[lo].lo && heapLike(maps[lo-1]) {
				lo--
			}
			for hi < len(maps) && maps[hi].lo == maps[hi-1].hi && heapLike(maps[hi]) {
				hi++
			}
			return maps[lo:hi]
		}
	}
	return nil
}
