/*
 * Build-time tool: turns files into a C source with one byte array each and a
 * table pc_embedded_files[] (path, data, length), so the web UI and the SQL
 * migrations live inside the binary.
 */
#include <stdio.h>

/* Paths come from the source tree (nested ui/ directories included); a quote,
 * backslash or control byte in a name must not break the generated C. */
static void put_c_string(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\%03o", c);
        else
            putchar(c);
    }
}

int main(int argc, char **argv)
{
    printf("#include <stddef.h>\n#include \"lib/embedded.h\"\n\n");
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        printf("static const unsigned char file_%d[] = {", i);
        int c;
        size_t n = 0;
        while ((c = fgetc(f)) != EOF) {
            printf("%d,%s", c, ++n % 24 ? "" : "\n");
        }
        printf("0};\n");
        fclose(f);
    }
    printf("const pc_embedded_file pc_embedded_files[] = {\n");
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        long len = 0;
        if (f) {
            fseek(f, 0, SEEK_END);
            len = ftell(f);
            fclose(f);
        }
        printf("    {\"");
        put_c_string(argv[i]);
        printf("\", file_%d, %ld},\n", i, len);
    }
    printf("    {NULL, NULL, 0}\n};\n");
    return 0;
}
