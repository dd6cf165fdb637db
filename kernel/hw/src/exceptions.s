    .section .text.exceptions, "ax"
    .code64
warden_exc_0:
    push 0
    push 0
    jmp warden_exc_common
warden_exc_1:
    push 0
    push 1
    jmp warden_exc_common
warden_exc_2:
    push 0
    push 2
    jmp warden_exc_common
warden_exc_3:
    push 0
    push 3
    jmp warden_exc_common
warden_exc_4:
    push 0
    push 4
    jmp warden_exc_common
warden_exc_5:
    push 0
    push 5
    jmp warden_exc_common
warden_exc_6:
    push 0
    push 6
    jmp warden_exc_common
warden_exc_7:
    push 0
    push 7
    jmp warden_exc_common
warden_exc_8:
    push 8
    jmp warden_exc_common
warden_exc_9:
    push 0
    push 9
    jmp warden_exc_common
warden_exc_10:
    push 10
    jmp warden_exc_common
warden_exc_11:
    push 11
    jmp warden_exc_common
warden_exc_12:
    push 12
    jmp warden_exc_common
warden_exc_13:
    push 13
    jmp warden_exc_common
warden_exc_14:
    push 14
    jmp warden_exc_common
warden_exc_15:
    push 0
    push 15
    jmp warden_exc_common
warden_exc_16:
    push 0
    push 16
    jmp warden_exc_common
warden_exc_17:
    push 17
    jmp warden_exc_common
warden_exc_18:
    push 0
    push 18
    jmp warden_exc_common
warden_exc_19:
    push 0
    push 19
    jmp warden_exc_common
warden_exc_20:
    push 0
    push 20
    jmp warden_exc_common
warden_exc_21:
    push 21
    jmp warden_exc_common
warden_exc_22:
    push 0
    push 22
    jmp warden_exc_common
warden_exc_23:
    push 0
    push 23
    jmp warden_exc_common
warden_exc_24:
    push 0
    push 24
    jmp warden_exc_common
warden_exc_25:
    push 0
    push 25
    jmp warden_exc_common
warden_exc_26:
    push 0
    push 26
    jmp warden_exc_common
warden_exc_27:
    push 0
    push 27
    jmp warden_exc_common
warden_exc_28:
    push 0
    push 28
    jmp warden_exc_common
warden_exc_29:
    push 29
    jmp warden_exc_common
warden_exc_30:
    push 30
    jmp warden_exc_common
warden_exc_31:
    push 0
    push 31
    jmp warden_exc_common
warden_exc_32:
    push 0
    push 32
    jmp warden_exc_common
warden_exc_33:
    push 0
    push 33
    jmp warden_exc_common
warden_exc_34:
    push 0
    push 34
    jmp warden_exc_common
warden_exc_35:
    push 0
    push 35
    jmp warden_exc_common
warden_exc_36:
    push 0
    push 36
    jmp warden_exc_common
warden_exc_37:
    push 0
    push 37
    jmp warden_exc_common
warden_exc_38:
    push 0
    push 38
    jmp warden_exc_common
warden_exc_39:
    push 0
    push 39
    jmp warden_exc_common
warden_exc_40:
    push 0
    push 40
    jmp warden_exc_common
warden_exc_41:
    push 0
    push 41
    jmp warden_exc_common
warden_exc_42:
    push 0
    push 42
    jmp warden_exc_common
warden_exc_43:
    push 0
    push 43
    jmp warden_exc_common
warden_exc_44:
    push 0
    push 44
    jmp warden_exc_common
warden_exc_45:
    push 0
    push 45
    jmp warden_exc_common
warden_exc_46:
    push 0
    push 46
    jmp warden_exc_common
warden_exc_47:
    push 0
    push 47
    jmp warden_exc_common
warden_exc_255:
    push 0
    push 255
    jmp warden_exc_common
warden_exc_common:
    push r15
    push r14
    push r13
    push r12
    push r11
    push r10
    push r9
    push r8
    push rbp
    push rdi
    push rsi
    push rdx
    push rcx
    push rbx
    push rax
    mov rdi, rsp
    cld
    call warden_exception_entry
    pop rax
    pop rbx
    pop rcx
    pop rdx
    pop rsi
    pop rdi
    pop rbp
    pop r8
    pop r9
    pop r10
    pop r11
    pop r12
    pop r13
    pop r14
    pop r15
    add rsp, 16
    iretq
    .section .rodata.exceptions, "a"
    .p2align 3
    .global warden_exc_table
warden_exc_table:
    .quad warden_exc_0
    .quad warden_exc_1
    .quad warden_exc_2
    .quad warden_exc_3
    .quad warden_exc_4
    .quad warden_exc_5
    .quad warden_exc_6
    .quad warden_exc_7
    .quad warden_exc_8
    .quad warden_exc_9
    .quad warden_exc_10
    .quad warden_exc_11
    .quad warden_exc_12
    .quad warden_exc_13
    .quad warden_exc_14
    .quad warden_exc_15
    .quad warden_exc_16
    .quad warden_exc_17
    .quad warden_exc_18
    .quad warden_exc_19
    .quad warden_exc_20
    .quad warden_exc_21
    .quad warden_exc_22
    .quad warden_exc_23
    .quad warden_exc_24
    .quad warden_exc_25
    .quad warden_exc_26
    .quad warden_exc_27
    .quad warden_exc_28
    .quad warden_exc_29
    .quad warden_exc_30
    .quad warden_exc_31
    .quad warden_exc_32
    .quad warden_exc_33
    .quad warden_exc_34
    .quad warden_exc_35
    .quad warden_exc_36
    .quad warden_exc_37
    .quad warden_exc_38
    .quad warden_exc_39
    .quad warden_exc_40
    .quad warden_exc_41
    .quad warden_exc_42
    .quad warden_exc_43
    .quad warden_exc_44
    .quad warden_exc_45
    .quad warden_exc_46
    .quad warden_exc_47
    .quad warden_exc_255
