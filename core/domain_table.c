#include "core/domain_table.h"

#include <errno.h>
#include <sys/random.h>

#include "core/mem.h"

/* A slot: 16 bytes, four to a cache line. key_off 0 marks an empty slot (the arena's byte 0 is
 * never a key); the key's length is the arena byte just before key_off. */
struct dt_slot {
	uint64_t hash;
	uint32_t key_off;
	uint32_t value;
};

/* The per-table secret: the hash's keys and the two finalisation tags that keep "example.com"
 * and ".example.com" (same labels) apart. */
struct dt_seed {
	uint64_t k0, k1, k2, k3;
	uint64_t tag_exact, tag_parent;
};

/* Which label counts (1..127) occur among the exact and the ".parent" keys: a lookup skips the
 * probes no key could answer, so a hostile 127-label name costs no more than the keys allow. */
struct dt_depths {
	uint64_t exact[2];
	uint64_t parent[2];
};

struct stls_domain_table_builder {
	struct dt_seed seed;
	struct dt_slot *slots;
	size_t mask;  /* slots - 1; a power of two minus one */
	size_t count; /* used slots */
	uint8_t *arena;
	size_t arena_len;
	size_t arena_cap;
	struct dt_depths depths;
	bool has_star;
	uint32_t star_value;
	uint32_t star_off;
};

/* The header; the slots follow it on their own cache lines, then the key arena, all in one
 * allocation. */
struct stls_domain_table {
	struct dt_seed seed;
	const struct dt_slot *slots;
	const uint8_t *arena;
	size_t mask;
	size_t count;
	struct dt_depths depths;
	bool has_star;
	uint32_t star_value;
	uint32_t star_off;
};

#define DT_MIN_SLOTS  16
#define DT_MAX_KEYS   (1u << 30)
#define DT_MAX_LABELS (STLS_DOMAIN_MAX_LEN / 2 + 1) /* "a.a.a...": 127 */
#define DT_HEADER_LEN ((sizeof(struct stls_domain_table) + 63) & ~(size_t)63)

/* The octets a domain may hold; letters are folded with stls_ascii_lower. '_' is allowed for
 * SRV-like names (RFC 2782), which some operators list. */
static const uint8_t dt_valid[256] = {
	['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1, ['-'] = 1, ['_'] = 1, ['.'] = 1,
};

/* The hash: a keyed multiply-and-fold mix in the style of wyhash, written for short labels.
 * 64x64->128 multiplication, the halves folded with xor. */
static inline uint64_t dt_mix(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t dt_load8(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t dt_load4(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* Folds one label (any length, possibly empty) into the running state h. The reads for short
 * labels overlap but, with the length also folded in, every byte is covered, so distinct labels
 * differ in what is mixed; the length is multiplied by a secret so labels of different lengths
 * cannot be made to collide without knowing it. */
static inline uint64_t dt_label(const struct dt_seed *s, uint64_t h, const uint8_t *p, size_t n)
{
	uint64_t a = 0, b = 0;
	if (n <= 16) {
		if (n >= 4) {
			size_t mid = (n >> 3) << 2;
			a = (dt_load4(p) << 32) | dt_load4(p + mid);
			b = (dt_load4(p + n - 4) << 32) | dt_load4(p + n - 4 - mid);
		} else if (n > 0) {
			a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
		}
	} else {
		size_t left = n;
		while (left > 16) {
			h = dt_mix(dt_load8(p) ^ s->k1, dt_load8(p + 8) ^ h);
			p += 16;
			left -= 16;
		}
		a = dt_load8(p + left - 16);
		b = dt_load8(p + left - 8);
	}
	return dt_mix(a ^ s->k1, b ^ h ^ ((uint64_t)n * s->k2));
}

static inline uint64_t dt_final(const struct dt_seed *s, uint64_t h, uint64_t tag)
{
	return dt_mix(h ^ s->k3, tag);
}

static inline void dt_depth_set(uint64_t *bits, unsigned depth)
{
	bits[(depth >> 6) & 1] |= (uint64_t)1 << (depth & 63);
}

static inline bool dt_depth_has(const uint64_t *bits, unsigned depth)
{
	return (bits[(depth >> 6) & 1] >> (depth & 63)) & 1;
}

/* The hash of a key in its stored form ("example.com" or ".example.com"), labels folded from
 * the right as a lookup does. Any bytes are accepted (stls_domain_table_get takes unchecked
 * input); *out_labels is the label count. */
static uint64_t dt_key_hash(const struct dt_seed *s, const uint8_t *key, size_t len, unsigned *out_labels)
{
	bool parent = len > 0 && key[0] == '.';
	size_t start = parent ? 1 : 0;
	uint64_t h = s->k0;
	unsigned labels = 0;
	size_t end = len;
	for (size_t i = len; i > start; i--) {
		if (key[i - 1] == '.') {
			h = dt_label(s, h, key + i, end - i);
			end = i - 1;
			labels++;
		}
	}
	h = dt_label(s, h, key + start, end - start);
	*out_labels = labels + 1;
	return dt_final(s, h, parent ? s->tag_parent : s->tag_exact);
}

static inline struct stls_span dt_arena_key(const uint8_t *arena, uint32_t off)
{
	return stls_span_make(arena + off, arena[off - 1]);
}

/* The index of the slot holding key (stored form), or of the empty slot where it would go. The
 * table is never more than half full, so the walk ends. */
static inline size_t dt_probe(const struct dt_slot *slots, size_t mask, const uint8_t *arena, uint64_t hash,
			      const uint8_t *key, size_t len)
{
	size_t i = (size_t)hash & mask;
	for (;;) {
		const struct dt_slot *slot = &slots[i];
		if (slot->key_off == 0)
			return i;
		if (slot->hash == hash && arena[slot->key_off - 1] == len &&
		    memcmp(arena + slot->key_off, key, len) == 0)
			return i;
		i = (i + 1) & mask;
	}
}

static enum stls_err dt_random(void *out, size_t len)
{
	uint8_t *p = out;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return STLS_ERR_IO;
		p += n;
		len -= (size_t)n;
	}
	return STLS_OK;
}

enum stls_err stls_domain_table_builder_new(struct stls_domain_table_builder **out)
{
	enum stls_err ret = STLS_OK;
	struct stls_domain_table_builder *b = stls_calloc(1, sizeof(*b));
	*out = NULL;
	if (!b)
		return STLS_ERR_NOMEM;
	ret = dt_random(&b->seed, sizeof(b->seed));
	if (ret != STLS_OK)
		goto out;
	/* Multipliers with their low bit set are never zero and keep the length term a bijection. */
	b->seed.k2 |= 1;
	b->seed.tag_exact |= 1;
	b->seed.tag_parent |= 1;
	if (b->seed.tag_exact == b->seed.tag_parent)
		b->seed.tag_parent ^= 2;
	b->slots = stls_calloc(DT_MIN_SLOTS, sizeof(*b->slots));
	b->arena_cap = 4096;
	b->arena = stls_malloc(b->arena_cap);
	if (!b->slots || !b->arena) {
		ret = STLS_ERR_NOMEM;
		goto out;
	}
	b->mask = DT_MIN_SLOTS - 1;
	b->arena[0] = 0;
	b->arena_len = 1;
	*out = b;
	b = NULL;
out:
	stls_domain_table_builder_free(&b);
	return ret;
}

void stls_domain_table_builder_free(struct stls_domain_table_builder **b)
{
	if (!b || !*b)
		return;
	stls_free_ptr(&(*b)->slots);
	stls_free_ptr(&(*b)->arena);
	stls_free_ptr(b);
}

const char *stls_domain_table_key_error(struct stls_span key)
{
	size_t len = key.len;
	if (len > 0 && key.ptr[len - 1] == '.')
		len--;
	if (len == 1 && key.ptr[0] == '*')
		return NULL;
	size_t i = len > 0 && key.ptr[0] == '.' ? 1 : 0;
	if (len == i)
		return "empty";
	if (memchr(key.ptr, '*', len))
		return "'*' stands alone (\".example.com\" is every subdomain of example.com)";
	if (len - i > STLS_DOMAIN_MAX_LEN)
		return "longer than 253 octets";
	size_t label = i;
	for (; i <= len; i++) {
		if (i < len && key.ptr[i] != '.') {
			if (!dt_valid[key.ptr[i]])
				return "a character other than letters, digits, '-', '_' and '.'";
			continue;
		}
		if (i == label)
			return "an empty label";
		if (i - label > STLS_DOMAIN_MAX_LABEL)
			return "a label longer than 63 octets";
		if (key.ptr[label] == '-' || key.ptr[i - 1] == '-')
			return "a label starting or ending with '-'";
		label = i + 1;
	}
	return NULL;
}

static enum stls_err dt_grow_slots(struct stls_domain_table_builder *b)
{
	size_t num = (b->mask + 1) * 2;
	struct dt_slot *slots = stls_calloc(num, sizeof(*slots));
	if (!slots)
		return STLS_ERR_NOMEM;
	for (size_t i = 0; i <= b->mask; i++) {
		const struct dt_slot *old = &b->slots[i];
		if (old->key_off == 0)
			continue;
		size_t j = (size_t)old->hash & (num - 1);
		while (slots[j].key_off != 0)
			j = (j + 1) & (num - 1);
		slots[j] = *old;
	}
	stls_free_ptr(&b->slots);
	b->slots = slots;
	b->mask = num - 1;
	return STLS_OK;
}

/* Appends [len][bytes] to the arena; *out_off is where the bytes start. */
static enum stls_err dt_arena_append(struct stls_domain_table_builder *b, uint32_t *out_off, const uint8_t *key,
				     size_t len)
{
	size_t need = b->arena_len + 1 + len;
	STLS_ENSURE(need <= UINT32_MAX, STLS_ERR_NOMEM);
	if (need > b->arena_cap) {
		size_t cap = b->arena_cap * 2;
		while (cap < need)
			cap *= 2;
		uint8_t *arena = stls_realloc(b->arena, cap);
		STLS_ENSURE(arena != NULL, STLS_ERR_NOMEM);
		b->arena = arena;
		b->arena_cap = cap;
	}
	b->arena[b->arena_len] = (uint8_t)len;
	memcpy(b->arena + b->arena_len + 1, key, len);
	*out_off = (uint32_t)(b->arena_len + 1);
	b->arena_len = need;
	return STLS_OK;
}

/* Copies a valid key into name (STLS_DOMAIN_MAX_LEN + 1 octets) in its stored form: lowercase,
 * without the trailing dot. Returns the length. */
static size_t dt_normalize(uint8_t *name, struct stls_span key)
{
	size_t len = key.len;
	if (key.ptr[len - 1] == '.')
		len--;
	for (size_t i = 0; i < len; i++)
		name[i] = stls_ascii_lower(key.ptr[i]);
	return len;
}

enum stls_err stls_domain_table_add(struct stls_domain_table_builder *b, struct stls_span key, uint32_t value,
				    bool *out_duplicate)
{
	*out_duplicate = false;
	STLS_ENSURE(stls_domain_table_key_error(key) == NULL, STLS_ERR_CONFIG);
	uint8_t name[STLS_DOMAIN_MAX_LEN + 1];
	size_t len = dt_normalize(name, key);

	if (len == 1 && name[0] == '*') {
		if (b->has_star) {
			*out_duplicate = true;
			return STLS_OK;
		}
		STLS_TRY(dt_arena_append(b, &b->star_off, name, 1));
		b->has_star = true;
		b->star_value = value;
		return STLS_OK;
	}

	unsigned labels;
	uint64_t hash = dt_key_hash(&b->seed, name, len, &labels);
	size_t i = dt_probe(b->slots, b->mask, b->arena, hash, name, len);
	if (b->slots[i].key_off != 0) {
		*out_duplicate = true;
		return STLS_OK;
	}
	STLS_ENSURE(b->count < DT_MAX_KEYS, STLS_ERR_NOMEM);
	uint32_t off;
	STLS_TRY(dt_arena_append(b, &off, name, len));
	if ((b->count + 1) * 2 > b->mask + 1) {
		/* The arena keeps the key just appended unreferenced if this fails: harmless. */
		STLS_TRY(dt_grow_slots(b));
		i = dt_probe(b->slots, b->mask, b->arena, hash, name, len);
	}
	b->slots[i] = (struct dt_slot){ .hash = hash, .key_off = off, .value = value };
	b->count++;
	dt_depth_set(name[0] == '.' ? b->depths.parent : b->depths.exact, labels);
	return STLS_OK;
}

bool stls_domain_table_builder_get(const struct stls_domain_table_builder *b, struct stls_span key, uint32_t *out_value)
{
	if (stls_domain_table_key_error(key) != NULL)
		return false;
	uint8_t name[STLS_DOMAIN_MAX_LEN + 1];
	size_t len = dt_normalize(name, key);
	if (len == 1 && name[0] == '*') {
		if (b->has_star)
			*out_value = b->star_value;
		return b->has_star;
	}
	unsigned labels;
	uint64_t hash = dt_key_hash(&b->seed, name, len, &labels);
	const struct dt_slot *slot = &b->slots[dt_probe(b->slots, b->mask, b->arena, hash, name, len)];
	if (slot->key_off == 0)
		return false;
	*out_value = slot->value;
	return true;
}

enum stls_err stls_domain_table_build(struct stls_domain_table **out, struct stls_domain_table_builder *b)
{
	enum stls_err ret = STLS_OK;
	*out = NULL;
	size_t slots_len = (b->mask + 1) * sizeof(struct dt_slot);
	uint8_t *mem = stls_calloc_aligned(1, DT_HEADER_LEN + slots_len + b->arena_len, 64);
	if (!mem) {
		ret = STLS_ERR_NOMEM;
		goto out;
	}
	memcpy(mem + DT_HEADER_LEN, b->slots, slots_len);
	memcpy(mem + DT_HEADER_LEN + slots_len, b->arena, b->arena_len);
	struct stls_domain_table *t = (struct stls_domain_table *)mem;
	*t = (struct stls_domain_table){
		.seed = b->seed,
		.slots = (const struct dt_slot *)(mem + DT_HEADER_LEN),
		.arena = mem + DT_HEADER_LEN + slots_len,
		.mask = b->mask,
		.count = b->count,
		.depths = b->depths,
		.has_star = b->has_star,
		.star_value = b->star_value,
		.star_off = b->star_off,
	};
	*out = t;
out:
	stls_domain_table_builder_free(&b);
	return ret;
}

void stls_domain_table_free(struct stls_domain_table **t)
{
	if (t)
		stls_free_ptr(t);
}

size_t stls_domain_table_count(const struct stls_domain_table *t)
{
	return t->count + (t->has_star ? 1 : 0);
}

static bool dt_star(const struct stls_domain_table *t, uint32_t *out_value, struct stls_span *out_key)
{
	if (!t->has_star)
		return false;
	*out_value = t->star_value;
	if (out_key)
		*out_key = dt_arena_key(t->arena, t->star_off);
	return true;
}

static bool dt_found(const struct stls_domain_table *t, const struct dt_slot *slot, uint32_t *out_value,
		     struct stls_span *out_key)
{
	*out_value = slot->value;
	if (out_key)
		*out_key = dt_arena_key(t->arena, slot->key_off);
	return true;
}

bool stls_domain_table_lookup(const struct stls_domain_table *t, struct stls_span domain, uint32_t *out_value,
			      struct stls_span *out_key)
{
	uint8_t name[STLS_DOMAIN_MAX_LEN];
	uint8_t dots[STLS_DOMAIN_MAX_LEN]; /* where the dots are, left to right */
	uint64_t state[DT_MAX_LABELS + 1]; /* state[k]: the hash state after the k rightmost labels */
	size_t len = domain.len;
	if (len > 0 && domain.ptr[len - 1] == '.')
		len--;
	if (t->count == 0 || len == 0 || len > STLS_DOMAIN_MAX_LEN)
		return dt_star(t, out_value, out_key);

	/* Lowercase into our own buffer without a branch per octet: whether every octet is allowed
	 * and where the dots are is gathered on the way and judged after. */
	unsigned bad = 0, num_dots = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = domain.ptr[i];
		bad |= dt_valid[c] ^ 1u;
		name[i] = (uint8_t)(c | (((uint8_t)(c - 'A') < 26) << 5));
		dots[num_dots] = (uint8_t)i;
		num_dots += c == '.';
	}
	if (bad)
		return dt_star(t, out_value, out_key);
	/* A label is 1 to 63 octets and neither starts nor ends with '-' (RFC 1123 2.1, RFC 1035
	 * 2.3.4); so past this check there are at most 127 labels. */
	size_t start = 0;
	for (unsigned d = 0; d <= num_dots; d++) {
		size_t end = d < num_dots ? dots[d] : len;
		if (end == start || end - start > STLS_DOMAIN_MAX_LABEL || name[start] == '-' || name[end - 1] == '-')
			return dt_star(t, out_value, out_key);
		start = end + 1;
	}
	unsigned num_labels = num_dots + 1;

	const struct dt_seed *s = &t->seed;
	uint64_t h = s->k0;
	size_t end = len;
	for (unsigned k = 1; k <= num_labels; k++) {
		start = k < num_labels ? dots[num_labels - k - 1] + 1u : 0;
		h = dt_label(s, h, name + start, end - start);
		state[k] = h;
		end = start - 1;
	}

	/* The candidates in the order the rules try them: the exact name, then the parents from the
	 * longest (a parent's stored key starts at the dot before its first label). Every hash is
	 * known now, so every slot is fetched at once: on a table larger than the caches a parent
	 * hit or a miss then waits for memory about once, not once per candidate. */
	uint64_t cand_hash[DT_MAX_LABELS];
	uint8_t cand_start[DT_MAX_LABELS];
	unsigned num_cand = 0;
	if (dt_depth_has(t->depths.exact, num_labels)) {
		cand_hash[num_cand] = dt_final(s, state[num_labels], s->tag_exact);
		cand_start[num_cand++] = 0;
	}
	for (unsigned k = num_labels - 1; k >= 1; k--) {
		if (!dt_depth_has(t->depths.parent, k))
			continue;
		cand_hash[num_cand] = dt_final(s, state[k], s->tag_parent);
		cand_start[num_cand++] = dots[num_labels - k - 1];
	}
	for (unsigned c = 0; c < num_cand; c++)
		__builtin_prefetch(&t->slots[(size_t)cand_hash[c] & t->mask]);
	for (unsigned c = 0; c < num_cand; c++) {
		size_t at = cand_start[c];
		const struct dt_slot *slot =
			&t->slots[dt_probe(t->slots, t->mask, t->arena, cand_hash[c], name + at, len - at)];
		if (slot->key_off != 0)
			return dt_found(t, slot, out_value, out_key);
	}
	return dt_star(t, out_value, out_key);
}

bool stls_domain_table_get(const struct stls_domain_table *t, struct stls_span key, uint32_t *out_value)
{
	if (key.len == 1 && key.ptr[0] == '*') {
		if (!t->has_star)
			return false;
		*out_value = t->star_value;
		return true;
	}
	if (t->count == 0 || key.len == 0 || key.len > STLS_DOMAIN_MAX_LEN + 1)
		return false;
	unsigned labels;
	uint64_t hash = dt_key_hash(&t->seed, key.ptr, key.len, &labels);
	const struct dt_slot *slot = &t->slots[dt_probe(t->slots, t->mask, t->arena, hash, key.ptr, key.len)];
	if (slot->key_off == 0)
		return false;
	*out_value = slot->value;
	return true;
}
