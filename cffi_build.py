"""Build Bulwark's native parts: the cffi bindings and the BPF objects.

- `bpf._native`: out-of-line (API mode) bindings to libbpf and libnftables. Only the
  `bpf` package imports it; no cffi object leaks past that package.
- every `bpf/*.bpf.c` (and the test programs in `tests/bpf/`) compiled with
  `clang -target bpf -O2 -g`, so each object carries its BTF.

Run by the install (setup.py's build_ext) and by `make`, which re-runs it when a
source changes. A missing tool or header stops it with one line naming the Debian
package to install.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
BPF_DIRS = [ROOT / "bpf", ROOT / "tests" / "bpf"]

# What each build step needs, and the Debian package that provides it.
REQUIREMENTS = {
    "clang": ("tool", "clang"),
    "/usr/include/bpf/libbpf.h": ("header", "libbpf-dev"),
    "/usr/include/nftables/libnftables.h": ("header", "libnftables-dev"),
}


class BuildError(SystemExit):
    """A build step cannot run: one line that says what to install."""


def check_requirements() -> None:
    """Stop with one line naming the package when any tool or header is missing."""
    for name in REQUIREMENTS:
        require(name)


def require(name: str) -> None:
    kind, package = REQUIREMENTS[name]
    found = shutil.which(name) if kind == "tool" else Path(name).exists()
    if not found:
        raise BuildError(f"cffi_build: missing {kind} {name}: apt-get install {package}")


CDEF = r"""
/* ---- libbpf: objects, programs, maps ---- */
struct bpf_object;
struct bpf_program;
struct bpf_map;

struct bpf_object_open_opts {
    size_t sz;
    const char *pin_root_path;
    char *kernel_log_buf;
    size_t kernel_log_size;
    uint32_t kernel_log_level;
    ...;
};
struct bpf_object *bpf_object__open_file(const char *path, const struct bpf_object_open_opts *opts);
int bpf_object__load(struct bpf_object *obj);
void bpf_object__close(struct bpf_object *obj);
const char *bpf_object__name(const struct bpf_object *obj);
struct bpf_program *bpf_object__next_program(const struct bpf_object *obj, struct bpf_program *prog);
struct bpf_map *bpf_object__next_map(const struct bpf_object *obj, const struct bpf_map *map);
const char *bpf_program__name(const struct bpf_program *prog);
int bpf_program__fd(const struct bpf_program *prog);
const char *bpf_map__name(const struct bpf_map *map);
int bpf_map__fd(const struct bpf_map *map);
int bpf_map__type(const struct bpf_map *map);
uint32_t bpf_map__key_size(const struct bpf_map *map);
uint32_t bpf_map__value_size(const struct bpf_map *map);
uint32_t bpf_map__max_entries(const struct bpf_map *map);
int bpf_map__set_max_entries(struct bpf_map *map, uint32_t max_entries);
int bpf_map__reuse_fd(struct bpf_map *map, int fd);
int bpf_map__set_pin_path(struct bpf_map *map, const char *path);
int libbpf_num_possible_cpus(void);

int bw_silence_libbpf(void);

/* ---- low-level syscall wrappers ---- */
int bpf_map_lookup_elem(int fd, const void *key, void *value);
int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags);
int bpf_map_delete_elem(int fd, const void *key);
int bpf_map_get_next_key(int fd, const void *key, void *next_key);

struct bpf_map_batch_opts { size_t sz; uint64_t elem_flags; uint64_t flags; };
int bpf_map_update_batch(int fd, const void *keys, const void *values, uint32_t *count,
                         const struct bpf_map_batch_opts *opts);
int bpf_map_delete_batch(int fd, const void *keys, uint32_t *count,
                         const struct bpf_map_batch_opts *opts);
int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values,
                         uint32_t *count, const struct bpf_map_batch_opts *opts);

struct bpf_map_create_opts { size_t sz; uint32_t map_flags; ...; };
int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size,
                   uint32_t max_entries, const struct bpf_map_create_opts *opts);
int bpf_obj_pin(int fd, const char *pathname);
int bpf_obj_get(const char *pathname);

struct bpf_link_create_opts { size_t sz; uint32_t flags; ...; };
int bpf_link_create(int prog_fd, int target_fd, int attach_type, const struct bpf_link_create_opts *opts);
int bpf_link_detach(int link_fd);
struct bpf_link_update_opts { size_t sz; uint32_t flags; uint32_t old_prog_fd; };
int bpf_link_update(int link_fd, int new_prog_fd, const struct bpf_link_update_opts *opts);

struct bpf_xdp_query_opts {
    size_t sz; uint32_t prog_id; uint32_t drv_prog_id; uint32_t hw_prog_id;
    uint32_t skb_prog_id; uint8_t attach_mode; ...;
};
int bpf_xdp_query(int ifindex, int flags, struct bpf_xdp_query_opts *opts);

struct bpf_test_run_opts {
    size_t sz; const void *data_in; void *data_out; uint32_t data_size_in; uint32_t data_size_out;
    uint32_t retval; int repeat; uint32_t duration; uint32_t flags; uint32_t cpu; ...;
};
int bpf_prog_test_run_opts(int prog_fd, struct bpf_test_run_opts *opts);

/* bpf_link_info / bpf_prog_info, read through small helpers */
int bw_link_info(int link_fd, uint32_t *prog_id, uint32_t *ifindex, uint32_t *type);
int bw_prog_id(int prog_fd, uint32_t *prog_id);
int bw_prog_tag(int prog_fd, uint8_t *tag);
int bpf_prog_get_fd_by_id(uint32_t id);
int bw_map_info(int map_fd, uint32_t *type, uint32_t *key_size, uint32_t *value_size,
                uint32_t *max_entries, char *name, size_t name_len);

#define BPF_XDP ...
#define XDP_FLAGS_SKB_MODE ...
#define XDP_FLAGS_DRV_MODE ...
#define XDP_FLAGS_REPLACE ...
#define BPF_F_REPLACE ...
#define XDP_ATTACHED_NONE ...
#define XDP_ATTACHED_DRV ...
#define XDP_ATTACHED_SKB ...
#define XDP_ATTACHED_HW ...
#define XDP_ATTACHED_MULTI ...
#define BPF_ANY ...
#define BPF_NOEXIST ...
#define BPF_EXIST ...
#define BPF_F_LOCK ...
#define BPF_F_NO_PREALLOC ...

/* ring buffers: samples arrive through a Python callback */
struct ring_buffer;
typedef int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size);
struct ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn sample_cb, void *ctx,
                                     const void *opts);
int ring_buffer__consume(struct ring_buffer *rb);
int ring_buffer__poll(struct ring_buffer *rb, int timeout_ms);
int ring_buffer__epoll_fd(const struct ring_buffer *rb);
void ring_buffer__free(struct ring_buffer *rb);
extern "Python" int bw_ring_sample(void *ctx, void *data, size_t size);

/* BTF, to check the Python layouts against what clang compiled */
struct btf;
struct btf *btf__parse(const char *path, void *btf_ext);
void btf__free(struct btf *btf);
int bw_btf_struct(const struct btf *btf, const char *name, uint32_t *size, uint32_t *vlen);
int bw_btf_member(const struct btf *btf, int struct_id, int index, const char **name,
                  uint32_t *offset_bits, long long *size);

/* mounting bpffs where it is missing */
int mount(const char *source, const char *target, const char *fstype,
          unsigned long flags, const void *data);

/* ---- libnftables ---- */
struct nft_ctx;
struct nft_ctx *nft_ctx_new(uint32_t flags);
void nft_ctx_free(struct nft_ctx *ctx);
void nft_ctx_set_dry_run(struct nft_ctx *ctx, bool dry);
unsigned int nft_ctx_output_get_flags(struct nft_ctx *ctx);
void nft_ctx_output_set_flags(struct nft_ctx *ctx, unsigned int flags);
int nft_ctx_buffer_output(struct nft_ctx *ctx);
const char *nft_ctx_get_output_buffer(struct nft_ctx *ctx);
int nft_ctx_buffer_error(struct nft_ctx *ctx);
const char *nft_ctx_get_error_buffer(struct nft_ctx *ctx);
int nft_run_cmd_from_buffer(struct nft_ctx *nft, const char *buf);
#define NFT_CTX_DEFAULT ...
#define NFT_CTX_OUTPUT_JSON ...
#define NFT_CTX_OUTPUT_HANDLE ...

/* The guard's kernel/user contract, read from bpf/guard.h (one definition). */
#define GUARD_MAX_RULES ...
#define GUARD_WORDS ...
#define GUARD_MAX_SETS ...
#define GUARD_MAX_CLASSES ...
#define GUARD_SMALL_NONE ...
#define GUARD_RANGE_NONE ...
#define GUARD_RULE_DEFAULT ...
#define GUARD_RULE_MALFORMED ...
#define GUARD_SLOTS ...
#define GUARD_MAX_LIMITS ...
#define GUARD_LENGTH_MAX ...
#define GUARD_TABLE_PAGE ...
#define GUARD_TABLE_MASKS ...
#define GUARD_TABLE_FILTER_BITS ...
#define GUARD_TABLE_PROBES ...
#define GUARD_V4_SLOTS ...
#define GUARD_V6_SLOTS ...

/* the host tables (guard.h), built and read at C speed */
int bw_table_fill(void *table, uint32_t pages, int v6, const uint8_t *keys, size_t count, uint32_t idx);
int bw_table_find(int fd, const uint8_t *key, int v6, uint64_t *mask);
int bw_table_mark(int fd, const uint8_t *key, int v6);
"""

SOURCE = r"""
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <linux/if_link.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <sys/mount.h>
#include <bpf/btf.h>
#include <nftables/libnftables.h>
#include "guard.h"

static int bw_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    return 0;
}

/* libbpf prints to stderr by default; Bulwark reports errors itself. */
int bw_silence_libbpf(void)
{
    libbpf_set_print(bw_quiet);
    return 0;
}

int bw_link_info(int link_fd, __u32 *prog_id, __u32 *ifindex, __u32 *type)
{
    struct bpf_link_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    int err = bpf_obj_get_info_by_fd(link_fd, &info, &len);
    if (err)
        return err;
    *prog_id = info.prog_id;
    *type = info.type;
    *ifindex = info.type == BPF_LINK_TYPE_XDP ? info.xdp.ifindex : 0;
    return 0;
}

int bw_prog_id(int prog_fd, __u32 *prog_id)
{
    struct bpf_prog_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    int err = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
    if (!err)
        *prog_id = info.id;
    return err;
}

/* The program's tag: a hash of its instructions, so two builds differ iff their code does. */
int bw_prog_tag(int prog_fd, __u8 *tag)
{
    struct bpf_prog_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    int err = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
    if (!err)
        memcpy(tag, info.tag, BPF_TAG_SIZE);
    return err;
}

int bw_btf_struct(const struct btf *btf, const char *name, __u32 *size, __u32 *vlen)
{
    int id = btf__find_by_name_kind(btf, name, BTF_KIND_STRUCT);
    if (id < 0)
        return id;
    const struct btf_type *t = btf__type_by_id(btf, id);
    *size = t->size;
    *vlen = btf_vlen(t);
    return id;
}

int bw_btf_member(const struct btf *btf, int struct_id, int index, const char **name,
                  __u32 *offset_bits, __s64 *size)
{
    const struct btf_type *t = btf__type_by_id(btf, struct_id);
    const struct btf_member *m = btf_members(t) + index;
    *name = btf__name_by_offset(btf, m->name_off);
    *offset_bits = btf_member_bit_offset(t, index);
    *size = btf__resolve_size(btf, m->type);
    return 0;
}

int bw_map_info(int map_fd, __u32 *type, __u32 *key_size, __u32 *value_size,
                __u32 *max_entries, char *name, size_t name_len)
{
    struct bpf_map_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    int err = bpf_obj_get_info_by_fd(map_fd, &info, &len);
    if (err)
        return err;
    *type = info.type;
    *key_size = info.key_size;
    *value_size = info.value_size;
    *max_entries = info.max_entries;
    strncpy(name, info.name, name_len - 1);
    name[name_len - 1] = 0;
    return 0;
}

/* ---- the guard's host tables (guard.h): the agent's side of what the program reads ---- */
static __u64 bw_table_hash(const __u8 *key, int v6, __u64 seed)
{
    __u32 addr;
    if (v6)
        return guard_hash_v6(key, seed);
    memcpy(&addr, key, 4);
    return guard_hash_v4(addr, seed);
}

/* Slot i of the probe for hash h in slot page `page` (a pointer into the page). */
static __u8 *bw_table_slot(__u8 *page, __u64 h, int v6, __u32 i)
{
    __u32 start = (__u32)h;
    if (v6)
        return page + ((start + i) & (GUARD_V6_SLOTS - 1)) * sizeof(struct guard_v6_slot);
    return page + ((start + i) & (GUARD_V4_SLOTS - 1)) * sizeof(struct guard_v4_slot);
}

/* Where key sits in a page (its slot, or the empty slot that ends its probe), or NULL
 * when it is not within GUARD_TABLE_PROBES slots of its start. */
static __u8 *bw_table_probe(__u8 *page, const __u8 *key, __u64 h, int v6)
{
    unsigned width = v6 ? 16 : 4;
    for (__u32 i = 0; i < GUARD_TABLE_PROBES; i++) {
        __u8 *slot = bw_table_slot(page, h, v6, i);
        __u32 idx;
        memcpy(&idx, slot + (v6 ? offsetof(struct guard_v6_slot, mask) : offsetof(struct guard_v4_slot, mask)), 4);
        if (!idx || !memcmp(slot, key, width))
            return slot;
    }
    return NULL;
}

/* The slot page of hash h in a table of `pages` slot pages (1-based: page 0 is the head). */
static __u32 bw_table_page(__u64 h, __u32 pages)
{
    return 1 + ((__u32)(h >> 32) & (pages - 1));
}

/* Place `count` keys (packed, network order) with mask index idx into the table that
 * starts at `table` (the mmapped array: head page, then `pages` slot pages). Returns 0,
 * or -E2BIG when a key would sit further than GUARD_TABLE_PROBES from its start.
 * Each key's slot is a cache miss somewhere in the table: the slot of the key
 * BW_PREFETCH places later is prefetched, so the misses overlap. (Ordering the keys by
 * page first, to fill each page while it is in cache, measured no faster here.) */
#define BW_PREFETCH 16
int bw_table_fill(void *table, uint32_t pages, int v6, const uint8_t *keys, size_t count, uint32_t idx)
{
    __u64 seed = ((struct guard_table_head *)table)->seed;
    unsigned width = v6 ? 16 : 4;
    size_t mask_at = v6 ? offsetof(struct guard_v6_slot, mask) : offsetof(struct guard_v4_slot, mask);
    __u8 *base = table;
    for (size_t n = 0; n < count; n++) {
        const __u8 *key = keys + n * width;
        __u64 h = bw_table_hash(key, v6, seed);
        if (n + BW_PREFETCH < count) {  /* the slot a later key starts at, fetched meanwhile */
            __u64 later = bw_table_hash(key + BW_PREFETCH * width, v6, seed);
            __builtin_prefetch(bw_table_slot(base + (size_t)bw_table_page(later, pages) * GUARD_TABLE_PAGE,
                                             later, v6, 0), 1);
        }
        __u8 *slot = bw_table_probe(base + (size_t)bw_table_page(h, pages) * GUARD_TABLE_PAGE, key, h, v6);
        if (!slot)
            return -E2BIG;
        memcpy(slot, key, width);
        memcpy(slot + mask_at, &idx, 4);
    }
    return 0;
}

/* The mask key has in the table of map fd (read from the kernel: its head and one page).
 * Returns 1 and sets *mask when it is there, 0 when not, a negative errno on failure. */
int bw_table_find(int fd, const uint8_t *key, int v6, uint64_t *mask)
{
    struct guard_table_head head;
    __u8 page[GUARD_TABLE_PAGE];
    __u32 zero = 0, idx;
    int err = bpf_map_lookup_elem(fd, &zero, &head);
    if (err)
        return err;
    if (!head.pages)
        return 0;
    __u64 h = bw_table_hash(key, v6, head.seed);
    __u32 at = bw_table_page(h, head.pages);
    if ((err = bpf_map_lookup_elem(fd, &at, page)))
        return err;
    __u8 *slot = bw_table_probe(page, key, h, v6);
    if (!slot)
        return 0;
    memcpy(&idx, slot + (v6 ? offsetof(struct guard_v6_slot, mask) : offsetof(struct guard_v4_slot, mask)), 4);
    if (!idx)
        return 0;
    *mask = head.mask[idx & (GUARD_TABLE_MASKS - 1)];
    return 1;
}

/* Set key's bit in the head's delta filter: the head is rewritten in place with the
 * bytes it holds, so a packet reading it meanwhile sees every other byte unchanged. */
int bw_table_mark(int fd, const uint8_t *key, int v6)
{
    struct guard_table_head head;
    __u32 zero = 0;
    int err = bpf_map_lookup_elem(fd, &zero, &head);
    if (err)
        return err;
    __u32 bit = (bw_table_hash(key, v6, head.seed) >> 16) & (GUARD_TABLE_FILTER_BITS - 1);
    if (head.filter[bit >> 3] & (1 << (bit & 7)))
        return 0;
    head.filter[bit >> 3] |= 1 << (bit & 7);
    return bpf_map_update_elem(fd, &zero, &head, BPF_EXIST);
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("bpf._native", SOURCE, libraries=["bpf", "nftables"], include_dirs=[str(ROOT / "bpf")])


def compile_bpf(source: Path, output: Path, defines: dict[str, str] | None = None) -> Path:
    """Compile one BPF C file to an object with BTF; skip when it is up to date.

    `defines` become -D flags (tests build a second guard with another GUARD_BUILD)."""
    require("clang")
    headers = [p for d in {source.parent, ROOT / "bpf"} for p in d.glob("*.h")]
    newest = max([source.stat().st_mtime, *(h.stat().st_mtime for h in headers)])
    if output.exists() and output.stat().st_mtime >= newest:
        return output
    arch_include = f"/usr/include/{os.uname().machine}-linux-gnu"
    cmd = [
        "clang", "-target", "bpf", "-O2", "-g", "-Wall", "-Werror",
        f"-D__TARGET_ARCH_{'x86' if os.uname().machine == 'x86_64' else 'arm64'}",
        "-I", str(ROOT / "bpf"), "-I", arch_include,
        *(f"-D{k}={v}" for k, v in (defines or {}).items()),
        "-c", str(source), "-o", str(output),
    ]
    staging = output.with_suffix(".tmp")
    cmd[-1] = str(staging)  # written aside, then renamed: a loader never sees half a file
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        staging.unlink(missing_ok=True)
        raise BuildError(f"cffi_build: clang failed on {source}:\n{result.stderr.strip()}")
    os.replace(staging, output)
    return output


def compile_bpf_objects(out_dir: str | None = None) -> list[Path]:
    """Compile every BPF source; objects land beside their sources or in out_dir/bpf."""
    require("/usr/include/bpf/libbpf.h")
    built = []
    for directory in BPF_DIRS:
        for source in sorted(directory.glob("*.bpf.c")):
            target_dir = directory
            if out_dir is not None and directory == ROOT / "bpf":
                target_dir = Path(out_dir) / "bpf"
                target_dir.mkdir(parents=True, exist_ok=True)
            built.append(compile_bpf(source, target_dir / (source.name[:-2] + ".o")))
    return built


def build_bindings() -> None:
    """Compile `bpf._native` in place, beside the package's sources."""
    for name in ("/usr/include/bpf/libbpf.h", "/usr/include/nftables/libnftables.h"):
        require(name)
    try:
        ffibuilder.compile(tmpdir=str(ROOT / "build" / "cffi"), target=None, verbose=False)
    except Exception as exc:  # the C compiler's own output is above; one line here
        raise BuildError(f"cffi_build: building bpf._native failed: {exc}") from exc
    built = ROOT / "build" / "cffi" / "bpf"
    fresh = {lib.name for lib in built.glob("_native*.so")}
    for name in fresh:
        target = ROOT / "bpf" / name
        if target.exists() and target.read_bytes() == (built / name).read_bytes():
            continue
        # a new inode, never an overwrite: running processes have the old one mapped
        staging = target.with_suffix(".tmp")
        shutil.copy2(built / name, staging)
        os.replace(staging, target)
    for stale in (ROOT / "bpf").glob("_native*.so"):  # e.g. the abi3 one an install left
        if stale.name not in fresh:
            stale.unlink()


def main() -> int:
    build_bindings()
    for obj in compile_bpf_objects():
        print(f"built {obj.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
