/* placeholder */
typedef int lg_hotstuff_placeholder;
