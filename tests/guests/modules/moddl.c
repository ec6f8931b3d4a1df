/*
 * moddl: opens libraries with dlopen, calls a function in each, and
 * closes them again, one after the other (the next may land where the
 * last one was).
 *
 *     moddl LIBRARY FUNCTION [LIBRARY FUNCTION ...]
 *
 * For each: prints "opened=LIBRARY FUNCTION=ADDRESS result=R" before
 * dlclose, then "closed=LIBRARY".
 */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        void *lib = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
        if (lib == NULL) {
            fprintf(stderr, "moddl: %s\n", dlerror());
            return 1;
        }
        unsigned long (*fn)(unsigned long) = (unsigned long (*)(unsigned long))dlsym(lib, argv[i + 1]);
        if (fn == NULL) {
            fprintf(stderr, "moddl: %s\n", dlerror());
            return 1;
        }
        printf("opened=%s %s=%p result=%lu\n", argv[i], argv[i + 1], (void *)fn, fn(100));
        fflush(stdout);
        if (dlclose(lib) != 0) {
            fprintf(stderr, "moddl: %s\n", dlerror());
            return 1;
        }
        printf("closed=%s\n", argv[i]);
    }
    return 0;
}
