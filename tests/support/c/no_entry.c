/* A perfectly good shared library that is not a Shardex plugin: no entry symbol. */
int some_other_function(int x) {
    return x + 1;
}
