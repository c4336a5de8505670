"""Names of phase 2's internal columns, in one place.

Passes hand each other small decision rows; these names are their contract. Written files carry
only the public columns (REJECT, DUPLICATE_OF, DUP_CLUSTER, DUP_CLUSTER_SIZE, SEMANTIC_CLUSTER).
"No value" in an internal string column is "" (see passes.is_str).
"""

from __future__ import annotations

# Pass 1 (meta): one row per document.
UID = "_uid"  # file_index << 32 | row_in_file (files.uids); negative: an earlier batch's document
ID = "id"
HASH = "_hash"  # 64-bit hash of the (normalized) text
PRIO = "_prio"  # survivor priority, lower is better (survivors.priority)
CONTAM = "_contam"  # benchmark name, "" when clean
CONTAM_NGRAMS = "_contam_ngrams"
DROP = "_drop"  # contaminated and dropped (decontam policy)
CUT_TEXT = "_cut_text"  # text after a decontamination cut, "" when not cut
URL_HASH = "_url_hash"
HAS_URL = "_has_url"
SIG = "_sig"  # MinHash signature (uint32 x num_perm)
SIG_STORED = "_sig_stored"  # signature taken from phase 1's column
EMB = "_emb"  # semantic embedding (the semantic pass only)
EMB_KEY = "_emb_key"  # hash of the embedded text: the key of the run's embedding cache (embed/cache.py)
EMB_PART = "_emb_part"  # the cache part file a row goes to

# Exact and URL groups: the best member's uid and the group's size.
EXACT_BEST = "_exact_best"
EXACT_SIZE = "_exact_size"
URL_BEST = "_url_best"
URL_SIZE = "_url_size"

# Edges of the duplicate graph and its components.
X, Y = "x", "y"
COMP = "_comp"

# Grouping keys (a partition of a hash).
HASH_PART = "_hpart"
URL_PART = "_upart"
COMP_PART = "_cpart"
FILE = "_file"

# Decisions (public names, written to kept/ and rejected/).
REJECT = "reject"
DUPLICATE_OF = "duplicate_of"
DUP_CLUSTER = "dup_cluster"
DUP_CLUSTER_SIZE = "dup_cluster_size"
SEMANTIC_CLUSTER = "semantic_cluster"
OUTPUT = (REJECT, DUPLICATE_OF, DUP_CLUSTER, DUP_CLUSTER_SIZE, SEMANTIC_CLUSTER)

# Component decisions before they are merged into the defaults (survivors.decide_components' output).
DECIDED_REJECT = "_reject"
C_REJECT, C_DUP_OF, C_CLUSTER, C_SIZE = "_c_reject", "_c_dup_of", "_c_cluster", "_c_size"

# Semantic dedup (semantic.dedup_cluster's columns) and their merge names.
SEM_CLUSTER, SEM_REJECT, SEM_DUP_OF, SEM_SIZE = "_sem_cluster", "_sem_reject", "_sem_dup_of", "_sem_size"
S_PRESENT, S_CLUSTER, S_REJECT, S_DUP_OF, S_SIZE = (
    "_s_present",
    "_s_cluster",
    "_s_reject",
    "_s_dup_of",
    "_s_size",
)
SAMPLE_KEY = "_skey"
# The semantic pass's own per-document columns (dedup/semantic.py).
TEXT = "_text"  # a sampled document's text (the hashed embedder's fit sample)
SEM_LANG, SEM_LENGTH, SEM_QUALITY = "_sem_lang", "_sem_length", "_sem_quality"
SEM_KEY = "_sem_key"  # keep order inside a cluster (lower first)
SEM_POS = "_sem_pos"  # position in that order
SEM_M = "_sem_m"  # highest cosine to an earlier document of the cluster
SEM_A = "_sem_a"  # uid of that document
SEM_NN = "_sem_nn"  # highest cosine to any other document of the cluster
